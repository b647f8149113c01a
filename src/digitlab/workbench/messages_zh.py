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
    # exceptions.py: an exception in the learner's code
    "not written yet": "还没写",
    "not written yet (as it stands: {reason})": "还没写（按现在的代码：{reason}）",
    "a .grad was assigned a tensor of another shape than its parameter's (transposed? "
    "a batch dimension not summed away?)": "给 .grad 赋了一个和参数形状不同的张量（转置了？批量维度没有求和消掉？）",
    "a tensor is put on 'cuda' and this machine has no GPU: make new tensors on the "
    "input's device (device=x.device) instead of a fixed device='cuda'": "有张量被放到了 'cuda' 上，但这台机器没有 GPU：新建张量时用输入所在的设备（device=x.device），"
    "不要写死 device='cuda'",
    "self.{name} is never set: set it in __init__ or forward": "self.{name} 从来没有被赋值：请在 __init__ 或 forward 里设置它",
    "{what} does not take the arguments torch.nn's namesake takes: {text}": "{what} 不接受 torch.nn 中同名类所接受的参数：{text}",
    "backward reads self.{name}, which forward never saved: store it in forward "
    "(self.{name} = ...)": "backward 读取了 self.{name}，但 forward 从没保存过它：请在 forward 里保存（self.{name} = ...）",
    "a .grad of shape {given} for a parameter of shape {wanted}: the same "
    "numbers with an extra dimension of 1, which only matches by broadcasting; "
    "reshape it (sum over the batch without keepdim)": "参数形状是 {wanted}，.grad 的形状却是 {given}：数值相同但多了一个大小为 1 的维度，"
    "只是靠广播才对得上；请 reshape（在批量维度上求和时不要 keepdim）",
    "a .grad of shape {given} for a parameter of shape {wanted}: transposed": "参数形状是 {wanted}，.grad 的形状却是 {given}：转置了",
    "the bias's gradient is summed over the wrong axes: keep the channel axis, sum the "
    "others (.sum(0) for Linear, .sum((0, 2, 3)) for Conv2d)": "偏置的梯度求和的维度不对：保留通道维度，对其余维度求和（Linear 用 .sum(0)，Conv2d 用 .sum((0, 2, 3))）",
    "the bias's gradient is not summed over the batch: sum grad_out over every axis "
    "but the channels (.sum(0) for Linear, .sum((0, 2, 3)) for Conv2d)": "偏置的梯度没有在批量维度上求和：对 grad_out 除通道以外的所有维度求和（Linear 用 .sum(0)，Conv2d 用 .sum((0, 2, 3))）",
    # initial.py: the parameters as the constructor makes them
    "fill it as PyTorch does: .uniform_(-b, b), b = 1/sqrt(fan_in) = {bound:.3g}": "请像 PyTorch 那样初始化：.uniform_(-b, b)，b = 1/sqrt(fan_in) = {bound:.3g}",
    "not initialised: torch.empty leaves whatever was in memory (the check fills that "
    "with NaN to show it); {fill}": "没有初始化：torch.empty 只是留下内存里原有的内容（检查时用 NaN 填充来显示这一点）；{fill}",
    "every unit starts the same, gets the same gradient and stays the same: draw the "
    "weights at random; {fill}": "每个单元一开始都一样，得到的梯度也一样，于是永远一样：权重要随机初始化；{fill}",
    "{name}'s values are {times:.3g} times b = 1/sqrt(fan_in) (root mean square "
    "{rms:.3g}); PyTorch's start within ±b": "{name} 的值是 b = 1/sqrt(fan_in) 的 {times:.3g} 倍（均方根 {rms:.3g}）；PyTorch 的初始值在 ±b 之内",
    "too large: activations grow layer by layer and the loss blows up in the first "
    "steps (torch.randn without the 1/sqrt(fan_in)?); {fill}": "太大了：激活值逐层变大，损失在最初几步就会爆炸（用了 torch.randn 却没乘 1/sqrt(fan_in)？）；{fill}",
    "{name} is all zeros": "{name} 全是 0",
    "{name} is every element {value:g}": "{name} 的每个元素都是 {value:g}",
    # layercheck.py and sandbox.py: a case that hangs or crashes
    "did not finish within {timeout:g} s; stopped, the other cases ran; it was stuck at "
    "the line shown below": "{timeout:g} 秒内没有完成；已停止，其他用例照常运行；它卡在下面显示的那一行",
    "did not finish within {timeout:g} s; stopped, the other cases ran": "{timeout:g} 秒内没有完成；已停止，其他用例照常运行",
    "the process running your code died (exit code {code})": "运行你代码的进程崩溃了（退出码 {code}）",
    "an endless loop? look for a loop whose condition never changes": "死循环？找一找条件永远不变的循环",
    "not run: {method} hung in an earlier case (as above)": "未运行：{method} 在前面的用例中卡住了（同上）",
    # loss_and_optimizers.py
    "step 1 is right, later ones are not: check the state kept between steps (momentum buffer, "
    "moment estimates, bias correction's step count)": "第 1 步是对的，之后的步不对：检查步与步之间保存的状态（动量缓冲、矩估计、偏差修正用的步数）",
    "its input (the logits)": "它的输入（logits）",
    "forward's input (the logits)": "forward 的输入（logits）",
    # report.py: the report's frame
    "digitlab's interface: backward(grad_out) returns dL/dx, adds into .grad": "digitlab 的接口：backward(grad_out) 返回 dL/dx，并累加进 .grad",
    "the recruitment template's: backward(ones) sets .grad, returns dL/dx": "招新模板的接口：backward(ones) 设置 .grad，返回 dL/dx",
    "torch.optim's interface: zero_grad(), step()": "torch.optim 的接口：zero_grad()、step()",
    "checking {path} against PyTorch": "正在用 PyTorch 检查 {path}",
    "(in float32, each tensor within {rtol32:g} of its largest value, in float64 within "
    "{rtol64:g}: rounding cannot trip that, a bug does)": "（float32 下每个张量的误差须在其最大值的 {rtol32:g} 以内，float64 下在 {rtol64:g} 以内："
    "舍入误差达不到这个程度，bug 会）",
    "found: {classes}": "找到：{classes}",
    "not in the file: {names} (digitlab.scratch's are used for those when you train)": "文件里没有：{names}（训练时用 digitlab.scratch 的实现代替）",
    "your code printed {count} lines:": "你的代码打印了 {count} 行：",
    "your code printed {count} lines (kept out of this report; the first: {first!r}; "
    "--show-output shows them)": "你的代码打印了 {count} 行（没有放进报告；第一行：{first!r}；加 --show-output 可以看到）",
    "all ok": "全部正确",
    "{wrong} of {total} cases wrong": "{total} 个用例中有 {wrong} 个错误",
    "{todo} not written yet": "{todo} 个还没写",
    "{tensor} not written yet (as above)": "{tensor} 还没写（同上）",
    "{message} (same as above)": "{message}（原因同上）",
    "(the same traceback as above)": "（回溯信息同上）",
    "max abs error {abs:.3g}, max rel error {rel:.3g}, {wrong} of {total} wrong": "最大绝对误差 {abs:.3g}，最大相对误差 {rel:.3g}，{total} 个中错了 {wrong} 个",
    "likely: {diagnosis}": "可能的原因：{diagnosis}",
    "where (rows x columns; for images H x W over all N and C):": "出错位置（行 x 列；图像为 H x W，合并了所有 N 和 C）：",
    "note: {note}": "提示：{note}",
    "all ok: {cases} cases of {classes} classes match PyTorch": "全部正确：{classes} 个类的 {cases} 个用例都与 PyTorch 一致",
    "{wrong} wrong and {todo} not written yet of {total} cases, in {classes}": "{total} 个用例中 {wrong} 个错误、{todo} 个还没写，在 {classes} 中",
    "{todo} not written yet of {total} cases, in {classes}": "{total} 个用例中 {todo} 个还没写，在 {classes} 中",
    "{wrong} wrong of {total} cases, in {classes}": "{total} 个用例中 {wrong} 个错误，在 {classes} 中",
    # rows.py: a case's row
    "{what} raised {error}": "{what} 抛出了 {error}",
    "the output matches PyTorch; {what} raised {error}": "输出与 PyTorch 一致；{what} 抛出了 {error}",
    "the output matches PyTorch; backward set {owner}.grad to a {given} tensor; "
    "{owner} is {wanted}": "输出与 PyTorch 一致；backward 把 {owner}.grad 设成了形状为 {given} 的张量；{owner} 的形状是 {wanted}",
    "backward set {owner}.grad to a {given} tensor; {owner} is {wanted}": "backward 把 {owner}.grad 设成了形状为 {given} 的张量；{owner} 的形状是 {wanted}",
    "could not be checked: {error}: {text}": "无法检查：{error}: {text}",
    "right in float32, but in float64 the output is off by {error:.1e}: only float64 "
    "separates this from right; a small bug float32 rounding hides": "float32 下正确，但 float64 下输出偏差 {error:.1e}：只有 float64 能把它和正确结果区分开；"
    "这是一个被 float32 舍入误差掩盖的小 bug",
    "in float64 your output comes back as {dtype} (error {error:.1e}): something inside "
    "is made in float32; create tensors with dtype=x.dtype": "输入是 float64 时你的输出却是 {dtype}（误差 {error:.1e}）：内部有东西是按 float32 创建的；"
    "新建张量时请用 dtype=x.dtype",
    # runners.py: in-place changes, parameters, accumulation
    "the caller's tensor must stay as it was (the layer before, autograd and the caller may "
    "still read it): make a new tensor (x = x - m, x * mask) instead of changing it (x -= m, "
    "x[...] = 0, x.sub_(m))": "调用者传进来的张量必须保持原样（前一层、autograd 和调用者可能还要读它）：请新建张量"
    "（x = x - m，x * mask），不要原地修改它（x -= m，x[...] = 0，x.sub_(m)）",
    "gradients are SET where they should accumulate: digitlab's interface (like autograd) adds "
    "into .grad (grad += ...), and zero_grad clears it": "梯度被直接赋值了，但应该累加：digitlab 的接口（和 autograd 一样）把梯度加进 .grad（grad += ...），由 zero_grad 清零",
    "gradients accumulate, but this file follows the template's interface, where backward SETS "
    "self.weight.grad (=, not +=)": "梯度被累加了，但这个文件用的是模板的接口，backward 应该直接设置 self.weight.grad（用 =，不是 +=）",
    "its shape {old} -> {new}": "它的形状 {old} -> {new}",
    "{wrong} of {total} elements": "{total} 个元素中的 {wrong} 个",
    "{method} changed {name} in place ({what})": "{method} 原地修改了{name}（{what}）",
    "its input x": "它的输入 x",
    "forward's input x": "forward 的输入 x",
    "your layer has no parameter named {name!r}": "你的层没有名为 {name!r} 的参数",
    "name it as torch.nn does": "请按 torch.nn 的方式命名",
    "after two backward calls weight.grad holds one call's gradient": "调用两次 backward 之后，weight.grad 里只有一次的梯度",
    "after two backward calls weight.grad holds the sum of both": "调用两次 backward 之后，weight.grad 里是两次梯度之和",
    "after two backward calls weight.grad is neither one call's gradient nor "
    "their sum": "调用两次 backward 之后，weight.grad 既不是一次的梯度，也不是两次之和",
    "backward reuses state from the previous call": "backward 复用了上一次调用留下的状态",
    # learner.py: train --layers
    "your CrossEntropyLoss(label_smoothing={s}) does not match PyTorch's ({tensor}: "
    "{message}; PyTorch's targets: 1 - S + S/C for the true class, S/C for each other, "
    "S = {s}, C classes); fix it, or train on it without smoothing: add "
    "--label-smoothing 0": "你的 CrossEntropyLoss(label_smoothing={s}) 与 PyTorch 的不一致（{tensor}：{message}；"
    "PyTorch 的目标分布：正确类别为 1 - S + S/C，其他每个类别为 S/C，S = {s}，C 为类别数）；"
    "请修正它，或者不用标签平滑来训练：加上 --label-smoothing 0",
    "{path}: {classes} do not match PyTorch yet ({summary}{init}); not training on "
    "them: see digitlab check --layers {path}": "{path}：{classes} 还和 PyTorch 不一致（{summary}{init}）；不会用它们训练：请看 digitlab check --layers {path}",
    "{path}: {classes} does not match PyTorch yet ({summary}{init}); not training "
    "on it: see digitlab check --layers {path}": "{path}：{classes} 还和 PyTorch 不一致（{summary}{init}）；不会用它训练：请看 digitlab check --layers {path}",
    "checked against PyTorch: all {count} cases of the classes this run uses pass; your "
    "classes from {file}: {yours}; digitlab.scratch's: {theirs}any other layer the net "
    "needs (Sequential, BatchNorm2d, ...)": "已用 PyTorch 检查：这次训练用到的类的 {count} 个用例全部通过；来自 {file} 的你的类：{yours}；"
    "digitlab.scratch 提供的：{theirs}以及网络需要的其他层（Sequential、BatchNorm2d 等）",
    "this run smooths labels by {s} (a recipe or --label-smoothing), and your "
    "CrossEntropyLoss(label_smoothing={s}) raised {error}: give its __init__ that "
    "argument, as PyTorch's, or train on it without smoothing: add --label-smoothing 0": "这次训练使用标签平滑 {s}（来自配方或 --label-smoothing），而你的 CrossEntropyLoss(label_smoothing={s}) "
    "抛出了 {error}：请像 PyTorch 那样给它的 __init__ 加上这个参数，或者不用标签平滑来训练：加上 --label-smoothing 0",
    "; {layer}'s initialisation: {message}": "；{layer} 的初始化：{message}",
    # train/loop.py: a learner's run that blows up at once
    "training diverged: the loss became {loss:.3g} at epoch {epoch}, step {step}; on your "
    "own layers a blow-up in the first steps most often comes from the initial weights "
    "(torch.empty, or randn without 1/sqrt(fan_in)) or from a backward; digitlab check "
    "--layers checks both; if it passes, lower --lr (now {lr}); nothing saved":
        "训练发散了：第 {epoch} 轮第 {step} 步时损失变成了 {loss:.3g}；用你自己的层时，最初几步就爆炸"
        "通常是初始权重（torch.empty，或没乘 1/sqrt(fan_in) 的 randn）或某个反向传播造成的；"
        "digitlab check --layers 会检查这两者；如果检查通过，再调低 --lr（现在是 {lr}）；没有保存任何东西",
    # layercheck.py: a file that cannot be checked
    "{path}: no such file; give the .py file that holds your layers":
        "{path}：文件不存在；请给出包含你的层的 .py 文件",
    "{path}: defines none of {names}; write at least one (digitlab exercise DIR gives a starter file)":
        "{path}：没有定义 {names} 中的任何一个；请至少写一个（digitlab exercise DIR 会生成初始文件）",
    "{path}: has a syntax error at line {line} (shown above); fix it and check again":
        "{path}：第 {line} 行有语法错误（见上方）；改正后再检查",
    "{path}: raised an exception when imported: {error}": "{path}：导入时抛出了异常：{error}",
    "{path}: importing it did not finish within {timeout:g} s; move work out of the module "
    "level or raise --timeout":
        "{path}：导入在 {timeout:g} 秒内没有完成；请把耗时的代码移出模块顶层，或调大 --timeout",
    "{path}: importing it did not finish within {timeout:g} s; move work out of the module "
    "level or raise --timeout; it was stuck at the line above":
        "{path}：导入在 {timeout:g} 秒内没有完成；请把耗时的代码移出模块顶层，或调大 --timeout；它卡在上方显示的那一行",
    "{path}: the process importing it died (exit code {code}); does the file call exit() or "
    "crash the interpreter at import?":
        "{path}：导入它的进程崩溃了（退出码 {code}）；这个文件是否在导入时调用了 exit() 或让解释器崩溃？",
    # exercise.py
    "{path}: exists already (your work?); choose another folder or move it away":
        "{path}：已经存在（是你写的吗？）；请换一个文件夹，或把它移走",
    # exercise.py and notebook.py: the guide
    """# Your own layers

`layers.py` holds the layers of the study CNN (and the optimizers) with their constructors written
and their bodies left to you: each raises NotImplementedError until you write it.

The order to go in:
{steps}

After each class:

    digitlab check --layers {path}

It compares every class you wrote with PyTorch on small cases chosen to break naive code, and says
for each failure which tensor is wrong, where, and the likely bug. When it says all ok:

    digitlab train --layers {path}

trains the study CNN on your layers (digitlab.scratch's fill in any class the file lacks) and
reports its test accuracy beside the same run on PyTorch's layers.
""": """# 你自己的层

`layers.py` 里是学习日志中那个 CNN 的各层（以及优化器）：构造函数已经写好，函数体留给你来写：
在你写好之前，每个函数体都会抛出 NotImplementedError。

建议的顺序：
{steps}

每写完一个类：

    digitlab check --layers {path}

它会在一些专门用来暴露常见错误的小用例上，把你写的每个类和 PyTorch 逐一比较；对每个错误，它会告诉你
哪个张量不对、错在哪里，以及可能的原因。全部正确之后：

    digitlab train --layers {path}

就会用你的层训练这个 CNN（文件里没有的类用 digitlab.scratch 的实现代替），并把测试准确率
和用 PyTorch 的层做同样训练的结果放在一起给你看。
""",
    """1. ReLU and Flatten (a few lines each), then Linear: forward, then backward.
2. CrossEntropyLoss: a stable forward (subtract each row's max), then its one-line gradient.
3. Conv2d: a loop version first is fine; the check's cases are small.
4. MaxPool2d: route each window's gradient to its maximum, and add where windows overlap.
5. SGD and Adam.""": """1. ReLU 和 Flatten（各几行），然后是 Linear：先写前向传播，再写反向传播。
2. CrossEntropyLoss：数值稳定的前向传播（减去每一行的最大值），然后是它一行就能写完的梯度。
3. Conv2d：先写循环版本也可以；检查用的用例都很小。
4. MaxPool2d：把每个窗口的梯度送到它的最大值处，窗口重叠的地方要累加。
5. SGD 和 Adam。""",
    """1. Linear: forward (keep self.input), then backward.
2. CrossEntropyLoss: a stable forward (subtract each row's max), then its one-line gradient.
3. Conv2d: conv2d (a loop version first is fine; the check's cases are small), then forward,
   which must pass this layer's own stride and padding on to conv2d, then backward.
ReLU, MaxPool2d, Flatten, SGD and Adam are not in the template: digitlab.scratch's are used.""": """1. Linear：前向传播（保存 self.input），然后是反向传播。
2. CrossEntropyLoss：数值稳定的前向传播（减去每一行的最大值），然后是它一行就能写完的梯度。
3. Conv2d：先写 conv2d（先写循环版本也可以；检查用的用例都很小），然后写 forward，它必须把本层
   自己的步长和填充传给 conv2d，最后写反向传播。
模板里没有 ReLU、MaxPool2d、Flatten、SGD 和 Adam：训练时用 digitlab.scratch 的实现。""",
    """# Your own layers, in a notebook

{docstring}

The order to go in:
{steps}

Fill in a class's cell, run it, then run the check cell below it: it compares your classes with
PyTorch on small cases chosen to break naive code and says, for each failure, which tensor is
wrong, where (the red map), and the likely bug. A class not written yet shows "not written yet".
When every check says all ok, train the study CNN on your layers: save the classes in a file and
run `digitlab train --layers layers.py` (the file `layers.py` beside this notebook has the same
starter code).""": """# 你自己的层（Notebook 版）

{docstring}

建议的顺序：
{steps}

填好一个类的单元格并运行，然后运行它下面的检查单元格：它会在一些专门用来暴露常见错误的小用例上，
把你的类和 PyTorch 比较；对每个错误，它会告诉你哪个张量不对、错在哪里（红色的图），以及可能的原因。
还没写的类会显示“还没写”。所有检查都全部正确之后，就可以用你的层训练这个 CNN：把这些类存进一个文件，
运行 `digitlab train --layers layers.py`（这个 notebook 旁边的 `layers.py` 里是同样的初始代码）。""",
}

# The starters' docstrings and comments in Chinese (`digitlab exercise --lang zh`): each text
# of workbench.exercise's starters, without its quotes or its '# ', and its twin. The code
# stays the English starter's: exercise.starter replaces these texts and nothing else.
ZH_STARTER_TEXTS = {
    """My layers for digitlab: forward and backward by hand.

digitlab's interface: forward(x) returns y and keeps what backward needs; backward(grad_out)
gets dL/dy, returns dL/dx, and ADDS dL/dW, dL/db into self.weight.grad, self.bias.grad
(create them when they are None), as PyTorch's autograd does.

    digitlab check --layers layers.py      after each class
    digitlab train --layers layers.py      when the check is all ok
""":
        """我的 digitlab 层：手写前向传播和反向传播。

digitlab 的接口：forward(x) 返回 y，并保存 backward 需要的东西；backward(grad_out) 拿到 dL/dy，
返回 dL/dx，并把 dL/dW、dL/db 累加（ADD）进 self.weight.grad、self.bias.grad
（它们是 None 时先创建），和 PyTorch 的 autograd 一样。

    digitlab check --layers layers.py      每写完一个类就检查一次
    digitlab train --layers layers.py      检查全部正确后再训练
""",
    """x: any shape -> y = max(x, 0), same shape. Hint: keep the mask x > 0.""":
        """x：任意形状 -> y = max(x, 0)，形状不变。提示：保存掩码 x > 0。""",
    """grad_out: dL/dy, y's shape -> dL/dx: the gradient passes where x > 0, else 0.""":
        """grad_out：dL/dy，形状同 y -> dL/dx：x > 0 处梯度原样通过，其余为 0。""",
    """x: (N, C, H, W) -> (N, C*H*W). Hint: keep x's shape.""":
        """x：(N, C, H, W) -> (N, C*H*W)。提示：保存 x 的形状。""",
    """grad_out: (N, C*H*W) -> dL/dx: (N, C, H, W), the same numbers reshaped back.""":
        """grad_out：(N, C*H*W) -> dL/dx：(N, C, H, W)，同样的数值 reshape 回去。""",
    """x: (N, in) -> y = x @ W^T + b: (N, out). Hint: keep x for backward.""":
        """x：(N, in) -> y = x @ W^T + b：(N, out)。提示：为 backward 保存 x。""",
    """grad_out: (N, out) -> dL/dx = grad_out @ W: (N, in).
        Adds dL/dW = grad_out^T @ x (out, in) and dL/db = grad_out summed over N (out,).""":
        """grad_out：(N, out) -> dL/dx = grad_out @ W：(N, in)。
        累加 dL/dW = grad_out^T @ x (out, in) 和 dL/db = grad_out 在 N 上求和 (out,)。""",
    """x: (N, C, H, W) -> y: (N, O, OH, OW), OH = (H + 2*padding - K) // stride + 1.
        y[n, o, i, j] = b[o] + sum over c, u, v of W[o, c, u, v] * xp[n, c, i*s + u, j*s + v],
        xp = x zero-padded by `padding` on every side (no kernel flip: cross-correlation).
        Hint: start with loops; then x.unfold gives every window at once.""":
        """x：(N, C, H, W) -> y：(N, O, OH, OW)，OH = (H + 2*padding - K) // stride + 1。
        y[n, o, i, j] = b[o] + 对 c, u, v 求和 W[o, c, u, v] * xp[n, c, i*s + u, j*s + v]，
        xp 是 x 在每一边补 `padding` 个 0 后的结果（卷积核不翻转：互相关）。
        提示：先写循环版本；之后可以用 x.unfold 一次取出所有窗口。""",
    """grad_out: (N, O, OH, OW) -> dL/dx: (N, C, H, W).
        dL/dW[o, c, u, v] = sum over n, i, j of grad_out[n, o, i, j] * xp[n, c, i*s + u, j*s + v]
        dL/db[o] = grad_out summed over n, i, j
        dL/dxp[n, c, i*s + u, j*s + v] += grad_out[n, o, i, j] * W[o, c, u, v]  (ADD: windows
        overlap), then crop the padding off.""":
        """grad_out：(N, O, OH, OW) -> dL/dx：(N, C, H, W)。
        dL/dW[o, c, u, v] = 对 n, i, j 求和 grad_out[n, o, i, j] * xp[n, c, i*s + u, j*s + v]
        dL/db[o] = grad_out 在 n, i, j 上求和
        dL/dxp[n, c, i*s + u, j*s + v] += grad_out[n, o, i, j] * W[o, c, u, v]（要累加：窗口会
        重叠），最后把填充裁掉。""",
    """x: (N, C, H, W) -> y: (N, C, OH, OW), the max of each window.
        Hint: remember WHERE each max was (the first one when several tie).""":
        """x：(N, C, H, W) -> y：(N, C, OH, OW)，每个窗口的最大值。
        提示：记住每个最大值在哪里（有并列时取第一个）。""",
    """grad_out: (N, C, OH, OW) -> dL/dx: (N, C, H, W), each window's gradient at its max
        only; where windows overlap (stride < kernel) the gradients ADD.""":
        """grad_out：(N, C, OH, OW) -> dL/dx：(N, C, H, W)，每个窗口的梯度只给它的最大值处；
        窗口重叠时（stride < kernel）梯度要累加。""",
    """logits: (N, classes), target: (N,) class indices -> the mean over N of
        -log softmax(logits)[target]. Hint: subtract each row's max before exp (logits of 1000
        overflow otherwise).""":
        """logits：(N, classes)，target：(N,) 类别下标 -> 对 N 求平均的
        -log softmax(logits)[target]。提示：求 exp 之前先减去每一行的最大值（否则 logits 为
        1000 时会溢出）。""",
    """-> dL/dlogits: (N, classes) = (softmax(logits) - onehot(target)) / N.""":
        """-> dL/dlogits：(N, classes) = (softmax(logits) - onehot(target)) / N。""",
    """For each p: g = p.grad + weight_decay * p; with momentum mu: b = g at the first
        step, else b = mu * b + g; g = g + mu * b (nesterov) or b. Then p -= lr * g.""":
        """对每个 p：g = p.grad + weight_decay * p；有动量 mu 时：第一步 b = g，之后
        b = mu * b + g；g = g + mu * b（nesterov）或 g = b。然后 p -= lr * g。""",
    """t += 1; for each p: g = p.grad + weight_decay * p; m = b1*m + (1-b1)*g;
        v = b2*v + (1-b2)*g^2; p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).""":
        """t += 1；对每个 p：g = p.grad + weight_decay * p；m = b1*m + (1-b1)*g；
        v = b2*v + (1-b2)*g^2；p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)。""",
    "PyTorch's initialisation": "PyTorch 的初始化方式",
    """My layers in the recruitment template's shape (the study log's level 2).

The template's interface: forward(input) returns the output; backward(ones) gets dL/doutput
(named `ones` in the template, but it is NOT always ones), SETS self.input.grad, self.weight.grad
and self.bias.grad, and returns self.input.grad. So forward must keep self.input = input.

    digitlab check --layers layers.py      after each class
    digitlab train --layers layers.py      when the check is all ok (digitlab.scratch's ReLU,
                                           MaxPool2d and Flatten fill in)
""":
        """我的层，按招新模板的形式写（学习日志里的 level 2）。

模板的接口：forward(input) 返回输出；backward(ones) 拿到 dL/doutput（模板里叫 `ones`，但它
并不总是全 1），直接设置（SET）self.input.grad、self.weight.grad 和 self.bias.grad，并返回
self.input.grad。所以 forward 必须保存 self.input = input。

    digitlab check --layers layers.py      每写完一个类就检查一次
    digitlab train --layers layers.py      检查全部正确后再训练（ReLU、MaxPool2d 和 Flatten
                                           用 digitlab.scratch 的实现）
""",
    """input (N, C, H, W), kernel (O, C, K, K), bias (O,) -> (N, O, OH, OW),
        OH = (H + 2*padding - K) // stride + 1; no kernel flip (cross-correlation).""":
        """input (N, C, H, W)，kernel (O, C, K, K)，bias (O,) -> (N, O, OH, OW)，
        OH = (H + 2*padding - K) // stride + 1；卷积核不翻转（互相关）。""",
    """Keep self.input, then call self.conv2d with THIS layer's stride and padding
        (self.stride[0], self.padding[0]): its defaults are stride 1, padding 0.""":
        """保存 self.input，然后用本层自己的步长和填充（self.stride[0]、self.padding[0]）
        调用 self.conv2d：它的默认值是步长 1、填充 0。""",
    """ones: dL/doutput (N, O, OH, OW). Set self.weight.grad (O, C, K, K), self.bias.grad
        (O,) and self.input.grad (N, C, H, W); return self.input.grad. Where windows overlap,
        their gradients ADD into the input's.""":
        """ones：dL/doutput (N, O, OH, OW)。设置 self.weight.grad (O, C, K, K)、self.bias.grad
        (O,) 和 self.input.grad (N, C, H, W)；返回 self.input.grad。窗口重叠的地方，它们的
        梯度要累加到输入的梯度上。""",
    """input (N, in) -> input @ W^T + b (N, out). Keep self.input.""":
        """input (N, in) -> input @ W^T + b (N, out)。保存 self.input。""",
    """ones: (N, out). weight.grad = ones^T @ input (out, in); bias.grad = ones summed over
        N (out,); input.grad = ones @ W (N, in), returned.""":
        """ones：(N, out)。weight.grad = ones^T @ input (out, in)；bias.grad = ones 在 N 上
        求和 (out,)；input.grad = ones @ W (N, in)，并返回它。""",
    """input (N, classes) logits, target (N,) -> mean over N of -log softmax(input)[target].
        Keep self.input and target; subtract each row's max before exp.""":
        """input (N, classes) 是 logits，target (N,) -> 对 N 求平均的 -log softmax(input)[target]。
        保存 self.input 和 target；求 exp 之前先减去每一行的最大值。""",
    """Set and return self.input.grad = (softmax(input) - onehot(target)) / N.""":
        """设置并返回 self.input.grad = (softmax(input) - onehot(target)) / N。""",
}


# The names of the cases a learner's classes go through (workbench.cases), as the report shows them.
ZH_CASES = {
    "3x3, padding 0, one channel, batch 1": "3x3，填充 0，单通道，批量 1",
    "3x3, padding 0, 2 -> 3 channels, 5x6 input": "3x3，填充 0，2 -> 3 通道，5x6 输入",
    "3x3, padding 1": "3x3，填充 1",
    "5x5, padding 2 (the study CNN's)": "5x5，填充 2（学习日志里 CNN 的设置）",
    "3x3, stride 2, padding 1, 7x6": "3x3，步长 2，填充 1，7x6",
    "5x5, stride 2, 3 channels, 9x11": "5x5，步长 2，3 通道，9x11",
    "gradients over two backward calls": "连续两次调用 backward 的梯度",
    "the parameters as your constructor makes them": "构造函数创建的初始参数",
    "5 -> 3, batch 4": "5 -> 3，批量 4",
    "7 -> 4, batch 1": "7 -> 4，批量 1",
    "6 -> 6 (square), batch 3": "6 -> 6（方阵），批量 3",
    "(2, 3, 4, 4)": "(2, 3, 4, 4)",
    "(5, 7) with zeros": "(5, 7)，含 0",
    "2x2, stride 2": "2x2，步长 2",
    "2x2, stride 2, ties": "2x2，步长 2，有并列最大值",
    "3x3, stride 2 (windows overlap)": "3x3，步长 2（窗口重叠）",
    "3x3, stride 2, overlap and ties": "3x3，步长 2，窗口重叠且有并列最大值",
    "2x2, stride 1, overlap and ties": "2x2，步长 1，窗口重叠且有并列最大值",
    "(2, 3, 4, 4) -> (2, 48)": "(2, 3, 4, 4) -> (2, 48)",
    "batch 1": "批量 1",
    "batch 4, 5 classes": "批量 4，5 个类别",
    "batch 1, 10 classes": "批量 1，10 个类别",
    "batch 8, 10 classes": "批量 8，10 个类别",
    "logits of +-1000 (stability)": "logits 为 ±1000（数值稳定性）",
    "lr 0.1, 5 steps": "学习率 0.1，5 步",
    "momentum 0.9, weight decay 0.01": "动量 0.9，权重衰减 0.01",
    "nesterov momentum 0.9": "Nesterov 动量 0.9",
    "lr 0.01, 5 steps": "学习率 0.01，5 步",
    "betas (0.8, 0.99), weight decay 0.01": "betas (0.8, 0.99)，权重衰减 0.01",
}
