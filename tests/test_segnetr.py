"""SegNetr (arXiv 2307.02953): partitions, patch merging / reverse, IRSC,
shapes per stage, and its input checks. Plain torch + mmpretrain pieces; the
mmseg end-to-end run is tests/downstream/test_e2e_mmseg.py."""
import pytest
import torch

from ci2p_mm.models import SegNetr
from ci2p_mm.models.backbones.segnetr import (SegNetrBlock,
                                              SpatialInteraction,
                                              global_partition,
                                              global_reverse, local_partition,
                                              local_reverse, patch_merge,
                                              patch_reverse)


def test_patch_merge_is_lossless_and_reverse_inverts_it():
    x = torch.rand(2, 6, 8, 12)
    merged = patch_merge(x)
    assert merged.shape == (2, 24, 4, 6)
    assert torch.equal(merged[:, :6], x[..., 0::2, 0::2])
    assert torch.equal(patch_reverse(merged), x)


def test_irsc_half_lands_back_on_its_own_positions():
    """Alternate channels of the merged map, patch-reversed: the even
    channels of the stage output at full resolution (no spatial mix-up)."""
    x = torch.rand(1, 8, 8, 8)
    assert torch.equal(patch_reverse(patch_merge(x)[:, 0::2]), x[:, 0::2])
    assert torch.equal(patch_reverse(patch_merge(x)[:, 1::2]), x[:, 1::2])


@pytest.mark.parametrize('size', [2, 4, 8])
def test_partitions_invert(size):
    s = torch.rand(2, 16, 24)
    assert torch.equal(local_reverse(local_partition(s, size), size, 16, 24),
                       s)
    assert torch.equal(
        global_reverse(global_partition(s, size), size, 16, 24), s)


def test_local_groups_are_contiguous_global_groups_span_the_map():
    s = torch.arange(64.).view(1, 8, 8)  # value = 8 * row + col
    local = local_partition(s, 4)[0, 0].view(4, 4)
    assert torch.equal(local, s[0, :4, :4])
    group = global_partition(s, 4)[0, 0]  # 2x2 patches of 2x2, half apart
    rows, cols = group // 8, group % 8
    assert sorted(set(rows.tolist())) == [0, 1, 4, 5]
    assert sorted(set(cols.tolist())) == [0, 1, 4, 5]
    # every global group has one patch in each quadrant of the map
    for g in global_partition(s, 4)[0]:
        quadrants = {(int(r) // 4, int(c) // 4) for r, c in
                     zip(g // 8, g % 8)}
        assert quadrants == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_spatial_interaction_reweights_within_groups_only():
    """Changing one group's input changes no other group's output."""
    torch.manual_seed(0)
    branch = SpatialInteraction(4, 'local')
    x = torch.rand(1, 3, 8, 8)
    y = x.clone()
    y[..., :4, :4] += 1.0
    out_x, out_y = branch(x), branch(y)
    assert not torch.allclose(out_x[..., :4, :4], out_y[..., :4, :4])
    assert torch.equal(out_x[..., 4:, :], out_y[..., 4:, :])
    assert torch.equal(out_x[..., :4, 4:], out_y[..., :4, 4:])


def test_patch_size_one_local_branch_is_identity():
    branch = SpatialInteraction(1, 'local')
    x = torch.rand(1, 4, 5, 7)
    assert torch.allclose(branch(x), x)


def test_block_keeps_shape_and_backpropagates():
    block = SegNetrBlock(8, 16, patch_size=4, global_size=8)
    x = torch.rand(2, 8, 16, 16, requires_grad=True)
    out = block(x)
    assert out.shape == (2, 16, 16, 16)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert block.branch_weights.grad is not None


def test_segnetr_stage_shapes():
    model = SegNetr('t', out_indices=(0, 1, 2, 3))
    model.eval()
    with torch.no_grad():
        outs = model(torch.rand(2, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(2, 128, 4, 6),
                                              (2, 64, 8, 12),
                                              (2, 32, 16, 24),
                                              (2, 16, 32, 48)]
    assert model.widths == (16, 32, 64, 128)


def test_segnetr_paper_patch_sizes_and_size():
    model = SegNetr('paper')
    local = [s[0].local_branch.size for s in model.encoder]
    glob = [s[0].global_branch.size for s in model.encoder]
    assert local == [8, 4, 2, 1] and glob == [16, 8, 4, 2]
    # the decoder (stages 2, 1, 0) uses the encoder's sizes
    assert [s[0].local_branch.size for s in model.decoder] == [2, 4, 8]
    n = sum(p.numel() for p in model.parameters())
    assert n == 14_691_318  # docs/segmentation.md's figure


def test_segnetr_errors_name_the_setting():
    with pytest.raises(ValueError, match='arch'):
        SegNetr('huge')
    with pytest.raises(ValueError, match='decoder_depths'):
        SegNetr(dict(base_channels=16, encoder_depths=(1, 1, 1, 1),
                     decoder_depths=(1, 1)))
    with pytest.raises(ValueError, match='patch_sizes'):
        SegNetr('t', patch_sizes=(8, 4, 2))
    model = SegNetr('t')
    with pytest.raises(ValueError, match='multiple'):
        model(torch.rand(1, 3, 48, 48))  # 24x24 at stage 0: no 16x16 groups
