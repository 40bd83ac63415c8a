import torch

from pixelrnn.masks import ColourGroups, MaskedConv2d, colour_groups, conv_mask

RGB, GREY = ColourGroups(3), ColourGroups(1)


def test_colour_groups_contiguous_and_interleaved():
    assert colour_groups(6, RGB).tolist() == [0, 0, 1, 1, 2, 2]
    assert colour_groups(6, ColourGroups(3, "interleaved")).tolist() == [0, 1, 2, 0, 1, 2]
    # Four LSTM gates of h = 3 units: each gate block repeats the layout, so the gates of a unit share a group.
    assert colour_groups(12, RGB, chunks=4).tolist() == [0, 1, 2] * 4


def test_centre_tap_tables_rgb():
    a = conv_mask(3, 3, (1, 1), "A", RGB)[:, :, 0, 0]
    b = conv_mask(3, 3, (1, 1), "B", RGB)[:, :, 0, 0]
    assert a.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
    assert b.tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]


def test_spatial_part_of_a_5x5_mask():
    m = conv_mask(1, 1, (5, 5), "A", GREY)[0, 0]
    expected = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    assert torch.equal(m, expected.float())
    assert conv_mask(1, 1, (5, 5), "B", GREY)[0, 0, 2, 2] == 1


def test_row_kernel_mask_sees_left_only():
    m = conv_mask(2, 2, (1, 3), "B", GREY)[0, 0]
    assert m.tolist() == [[1, 1, 0]]


def test_masked_conv_does_not_edit_weights_and_zeroes_masked_gradients():
    conv = MaskedConv2d(3, 6, 3, "A", RGB)
    before = conv.weight.detach().clone()
    out = conv(torch.randn(2, 3, 5, 5))
    out.sum().backward()
    assert torch.equal(conv.weight, before)
    assert torch.all(conv.weight.grad[conv.mask == 0] == 0)


def test_masked_conv_follows_dtype():
    conv = MaskedConv2d(1, 2, 3, "B", GREY).double()
    assert conv.mask.dtype == torch.float64
    assert conv(torch.randn(1, 1, 4, 4, dtype=torch.float64)).dtype == torch.float64


def test_cropped_kernel_equals_the_full_masked_convolution():
    """The forward pass skips the taps the mask always zeroes; it must equal the plain masked convolution."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    for kernel, mask_type in [(7, "A"), (3, "B"), ((1, 3), "B"), ((1, 5), "A"), (1, "B"), ((3, 1), "B"), (3, None)]:
        conv = MaskedConv2d(6, 9, kernel, mask_type, RGB).double()
        x = torch.randn(2, 6, 5, 4, dtype=torch.float64, requires_grad=True)
        reference = F.conv2d(x, conv.masked_weight(), conv.bias, padding=conv.padding)
        assert torch.allclose(conv(x), reference, atol=1e-12), (kernel, mask_type)
        grads = torch.autograd.grad(conv(x).sum(), [x, conv.weight])
        grads_ref = torch.autograd.grad(reference.sum(), [x, conv.weight])
        assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(grads, grads_ref))


def test_relu_written_into_the_padded_maps_equals_the_pad_of_the_relu():
    """ReluPad, the ReLU and the zero padding in one pass, against F.pad(torch.relu(x)): values and gradients."""
    import torch.nn.functional as F

    from pixelrnn.masks import ReluPad

    gen = torch.Generator().manual_seed(0)
    for layout in (torch.contiguous_format, torch.channels_last):
        for pad in [(1, 1, 1, 0), (2, 0, 3, 0), (0, 0, 0, 0), (1, 2, 0, 1)]:
            x = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=gen).contiguous(memory_format=layout)
            x.requires_grad_()
            fused, reference = ReluPad.apply(x, pad), F.pad(torch.relu(x), pad)
            assert torch.equal(fused, reference), pad
            assert fused.is_contiguous(memory_format=layout)  # the layout of x, for the convolution after it
            grad = torch.randn(reference.shape, dtype=torch.float64, generator=gen)
            assert torch.equal(*(torch.autograd.grad(y, x, grad)[0] for y in (fused, reference)))
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ReluPad.apply(t, (1, 1, 1, 0)), (x,))


def test_masked_conv_of_the_relu_equals_the_conv_of_the_relu():
    torch.manual_seed(0)
    for kernel, mask_type in [(3, "B"), (5, "A"), ((1, 3), "B"), (1, "B"), (3, None)]:
        conv = MaskedConv2d(6, 9, kernel, mask_type, RGB).double()
        x = torch.randn(2, 6, 5, 4, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
        x.requires_grad_()
        fused, reference = conv.of_relu(x), conv(torch.relu(x))
        assert torch.allclose(fused, reference, atol=1e-12), (kernel, mask_type)
        grads = torch.autograd.grad(fused.sum(), [x, conv.weight, conv.bias])
        grads_ref = torch.autograd.grad(reference.sum(), [x, conv.weight, conv.bias])
        assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(grads, grads_ref))
