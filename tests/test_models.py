import pytest
import torch

from digitlab import DigitlabError
from digitlab.nets import models


def test_cnn_is_the_study_logs():
    model = models.build("cnn")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {
        "conv1.0.weight": (16, 1, 5, 5),
        "conv1.0.bias": (16,),
        "conv2.0.weight": (32, 16, 5, 5),
        "conv2.0.bias": (32,),
        "out.weight": (10, 32 * 7 * 7),
        "out.bias": (10,),
    }
    assert [type(m).__name__ for m in model.conv1] == ["Conv2d", "ReLU", "MaxPool2d"]
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_fcn_accepts_larger_inputs():
    model = models.build("fcn")
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert model(torch.zeros(1, 1, 56, 84)).shape == (1, 10)
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())


def test_unknown_names_are_user_errors():
    with pytest.raises(DigitlabError, match="unknown model 'mlp'"):
        models.build("mlp")
    with pytest.raises(DigitlabError, match="unknown backend 'jax'"):
        models.build("cnn", "jax")
