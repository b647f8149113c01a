# ruff: noqa: E501 (a Chinese line is as long as its sentence)
"""The Chinese of every message a learner reads (workbench.messages): {English msgid: Chinese}.

Terms as Chinese deep-learning courses write them (《动手学深度学习》): 卷积, 卷积核, 反向传播,
前向传播, 梯度, 填充, 步长, 权重, 偏置, 损失函数, 交叉熵, 池化, 全连接层, 批量, 学习率,
优化器, 张量, 形状, 通道, 初始化. Code, tensor names and numbers stay as they are.
"""

ZH = {
    # diagnose.py: what is wrong with a tensor
    "{tensor} is missing (None)": "{tensor} 缺失（是 None）",
    "{tensor} is a {kind}, not a tensor": "{tensor} 是 {kind}，不是张量",
    "return a torch.Tensor": "请返回一个 torch.Tensor",
    "your {tensor} is {mine}, PyTorch's is {ref}": "你的 {tensor} 形状是 {mine}，PyTorch 的是 {ref}",
    "{tensor} holds NaN or inf in {wrong} of {total} elements": "{tensor} 的 {total} 个元素中有 {wrong} 个是 NaN 或 inf",
    "exp() overflowed: subtract each row's max before exp (log-sum-exp)": "exp() 溢出了：先减去每一行的最大值再求 exp（log-sum-exp 技巧）",
    "NaN or inf where PyTorch's numbers are finite": "PyTorch 的结果是有限数，你的却是 NaN 或 inf",
    "{tensor} is wrong in {wrong} of {total} elements": "{tensor} 的 {total} 个元素中有 {wrong} 个不对",
    "backward must put the parameter's gradient in .grad": "反向传播必须把参数的梯度放进 .grad",
    "return it from the method": "请在这个方法里把它返回（return）",
    "transposed: swap the two dimensions (dW of Linear is gy^T @ x, (out, in))": "转置了：交换两个维度（全连接层的 dW 是 gy^T @ x，形状 (out, in)）",
    "the same numbers with an extra or missing dimension of 1: {mine} only matches {ref} "
    "by broadcasting, which hides bugs; reshape to PyTorch's shape (sum over the batch "
    "for a bias gradient)": "数值相同，但多了或少了一个大小为 1 的维度：{mine} 只是靠广播才和 {ref} 对上，这会掩盖错误；"
    "请 reshape 成 PyTorch 的形状（偏置的梯度要在批量维度上求和）",
    "the right number of elements in the wrong shape: a missing reshape or view": "元素个数对，形状不对：少了一次 reshape 或 view",
    "padding {pad} looks ignored": "填充 {pad} 似乎被忽略了",
    "stride {stride} looks ignored": "步长 {stride} 似乎被忽略了",
    "padding {pad} and stride {stride} both look ignored": "填充 {pad} 和步长 {stride} 似乎都被忽略了",
    "your forward calls self.conv2d(input, weight, bias) and so gets conv2d's "
    "defaults (stride 1, padding 0): pass stride=self.stride[0], "
    "padding=self.padding[0]": "你的 forward 调用 self.conv2d(input, weight, bias)，于是用上了 conv2d 的默认值"
    "（步长 1，填充 0）：请传入 stride=self.stride[0], padding=self.padding[0]",
    "the height and width differ: check how padding and stride size the output": "高和宽不对：检查填充和步长如何决定输出的大小",
    "the padded input's gradient: crop the padding off (1 pixel on each side: "
    "dxp[:, :, 1:-1, 1:-1])": "这是填充后输入的梯度：把填充裁掉（每边 1 个像素：dxp[:, :, 1:-1, 1:-1]）",
    "the padded input's gradient: crop the padding off ({p} pixels on each side: "
    "dxp[:, :, {p}:-{p}, {p}:-{p}])": "这是填充后输入的梯度：把填充裁掉（每边 {p} 个像素：dxp[:, :, {p}:-{p}, {p}:-{p}]）",
    "check the shape each step produces against the docstring's shapes": "对照文档字符串里的形状，逐步检查每一步得到的形状",
    "only pixels that several windows share are wrong, and each holds what one of its "
    "windows sends back: overlapping windows' gradients overwrite each other; add them "
    "(+=) instead": "只有几个窗口共享的像素不对，而且每个只保存了其中一个窗口传回的梯度："
    "重叠窗口的梯度互相覆盖了；请改成累加（+=）",
    "only the border ({pad} pixels deep, the padding's reach) is wrong: check the padding": "只有边缘（{pad} 个像素宽，正是填充影响的范围）不对：检查填充",
    "the sign looks flipped": "符号似乎反了",
    "it is all zeros": "全是 0",
    "the sign is flipped (a - b where b - a is meant, or a missing minus)": "符号反了（该写 b - a 却写成了 a - b，或者少了一个负号）",
    "{batch} times too large: the 1/N of the mean over the batch (N = {batch}) is missing": "大了 {batch} 倍：对批量求平均时少了 1/N（N = {batch}）",
    "{batch} times too small: divided by the batch size (N = {batch}) once too often": "小了 {batch} 倍：多除了一次批量大小（N = {batch}）",
    "twice PyTorch's value: a factor 2 (a value counted twice, or a stray 2)": "是 PyTorch 的 2 倍：多了一个因子 2（某个值算了两次，或多写了一个 2）",
    "half PyTorch's value: a factor 2 (a value counted twice, or a stray 2)": "是 PyTorch 的一半：差了一个因子 2（某个值算了两次，或多写了一个 2）",
    "off by a constant factor {r:.4g}": "差了一个常数倍数 {r:.4g}",
    # references.py: what common bugs would give
    "this is the gradient for grad_out = all ones: backward ignores the grad_out it is given "
    "(multiply by it)": "这是 grad_out 全为 1 时的梯度：backward 忽略了传进来的 grad_out（要乘上它）",
    "ties: the gradient went to every maximum of a window; PyTorch sends it to one only "
    "(the first in row-major order)": "并列最大值：梯度给了窗口里每一个最大值；PyTorch 只给其中一个（按行优先顺序的第一个）",
    "the kernel is flipped: that is textbook convolution; PyTorch's Conv2d does not flip "
    "(cross-correlation)": "卷积核被翻转了：那是教科书上的卷积；PyTorch 的 Conv2d 不翻转卷积核（互相关）",
    "the bias is missing from the output": "输出里少加了偏置",
    "the bias is added twice": "偏置加了两次",
    "dL/dx is what the kernel rotated by 180 degrees gives: one flip too many (or too few); "
    "send each grad_out value back over its window with the weights as forward used them "
    "(w[i, j] to the pixel at +i, +j)": "dL/dx 等于把卷积核旋转 180 度后得到的结果：多翻转了一次（或少翻转了一次）；"
    "请按前向传播使用权重的方式，把每个 grad_out 值沿它的窗口传回去（w[i, j] 对应偏移 +i, +j 处的像素）",
    "the padding is cropped at the wrong offset (dxp[:, :, {a}:{a_end}, "
    "{b}:{b_end}]): crop {p} on each side, dxp[:, :, {p}:{p_h}, {p}:{p_w}]": "裁掉填充时位置偏了（dxp[:, :, {a}:{a_end}, {b}:{b_end}]）：每边裁掉 {p}，即 dxp[:, :, {p}:{p_h}, {p}:{p_w}]",
    "stride {s} is ignored in backward: output position (i, j) belongs to the window at "
    "(i*{s}, j*{s}) of the padded input, not at (i, j)": "反向传播忽略了步长 {s}：输出位置 (i, j) 对应的是填充后输入中 (i*{s}, j*{s}) 处的窗口，而不是 (i, j)",
    "{option} looks ignored": "{option} 似乎被忽略了",
}
