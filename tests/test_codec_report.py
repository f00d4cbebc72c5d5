"""The codec report (ci2p_mm.codec.report) on a small codec trained here."""
import json
import math

import numpy as np
import pytest
from conftest import make_codec_images
from PIL import Image

from ci2p_mm.codec import CodecWeightsError
from ci2p_mm.codec import report as codec_report
from ci2p_mm.utils.image_files import ImageFolderError
from ci2p_mm.utils.io import OutputError


def run_report(argv):
    """``tools/analysis_tools/codec_report.py argv``; the summary dict."""
    return codec_report.report(codec_report.parse_args(argv))


@pytest.fixture(scope='module')
def codec(trained_codec, tmp_path_factory):
    """(codec_final.pth trained 40 iterations, a folder of 9 images)."""
    images = make_codec_images(
        tmp_path_factory.mktemp('report_images'), n=8, seed=1)
    # A 50x70 image: not a multiple of 64, padded like eval_model does.
    Image.fromarray(np.full((50, 70, 3), 120,
                            np.uint8)).save(images / 'odd_size.jpg')
    return trained_codec[1], images


def test_report_numbers_and_panels(codec, tmp_path):
    final, images = codec
    out = tmp_path / 'report'
    result = run_report(
        [final, str(images), '--out-dir',
         str(out), '--max-panels', '2'])
    assert result['codec'] == 'bmshj2018-factorized' and result['quality'] == 5
    rows = result['images']
    assert len(rows) == 9
    for row in rows:
        assert row['bpp_mode'] == 'actual'
        assert math.isfinite(row['bpp']) and row['bpp'] > 0
        assert math.isfinite(row['psnr']) and row['psnr'] > 5
        assert row['ms_ssim'] is None  # under 161 px
        assert 0 < row['ssim'] <= 1
    odd = next(r for r in rows if r['image'] == 'odd_size.jpg')
    assert (odd['width'], odd['height']) == (70, 50)
    mean = result['mean']
    assert mean['bpp'] == pytest.approx(np.mean([r['bpp'] for r in rows]))

    with open(out / 'report.json') as f:
        assert json.load(f)['mean']['psnr'] == pytest.approx(mean['psnr'])
    csv_lines = (out / 'report.csv').read_text().splitlines()
    assert csv_lines[0].startswith('image,width,height,bpp,bpp_mode,psnr')
    assert len(csv_lines) == 1 + 9 + 1 and csv_lines[-1].startswith('MEAN')

    panels = sorted((out / 'panels').glob('*.png'))
    assert len(panels) == 2
    with Image.open(panels[0]) as img:
        img.verify()
    with Image.open(panels[0]) as img:
        assert img.size[0] > 2 * img.size[1]  # four pictures side by side


def test_estimated_bpp_is_close_to_actual(codec, tmp_path):
    final, images = codec
    actual = run_report([
        final,
        str(images), '--out-dir',
        str(tmp_path / 'a'), '--max-images', '3', '--max-panels', '0'
    ])
    estimated = run_report([
        final,
        str(images), '--out-dir',
        str(tmp_path / 'e'), '--max-images', '3', '--max-panels', '0',
        '--estimate'
    ])
    assert estimated['bpp_mode'] == 'estimated'
    for a, e in zip(actual['images'], estimated['images']):
        assert e['bpp'] > 0
        assert e['bpp'] == pytest.approx(a['bpp'], rel=0.5, abs=0.05)
        assert e['psnr'] == pytest.approx(a['psnr'], abs=0.5)


def test_ms_ssim_on_large_images(codec, tmp_path):
    final, _ = codec
    big = make_codec_images(tmp_path / 'big', n=1, size=192)
    result = run_report([
        final,
        str(big), '--out-dir',
        str(tmp_path / 'r'), '--max-panels', '0'
    ])
    assert 0 < result['images'][0]['ms_ssim'] <= 1
    assert result['mean']['ms_ssim'] == result['images'][0]['ms_ssim']


def test_truncated_checkpoint_names_the_file(codec, tmp_path):
    final, images = codec
    broken = tmp_path / 'codec_truncated.pth'
    data = open(final, 'rb').read()
    broken.write_bytes(data[:len(data) // 2])
    with pytest.raises(CodecWeightsError, match='codec_truncated.pth'):
        run_report(
            [str(broken),
             str(images), '--out-dir',
             str(tmp_path / 'r')])


def test_out_dir_that_is_a_file_is_refused_first(codec, tmp_path, monkeypatch):
    """Was NotADirectoryError from os.makedirs, after the codec loaded."""
    final, images = codec
    (tmp_path / 'r').write_text('notes')
    monkeypatch.setattr(codec_report, 'load_codec', None)  # not reached
    with pytest.raises(OutputError) as err:
        run_report([final, str(images), '--out-dir', str(tmp_path / 'r')])
    assert str(err.value) == (f'--out-dir {tmp_path}/r is a file, not a '
                              f'folder: pass a folder.')
    assert (tmp_path / 'r').read_text() == 'notes'


def test_empty_folder_and_bad_image_are_explained(codec, tmp_path):
    final, _ = codec
    (tmp_path / 'none').mkdir()
    with pytest.raises(ImageFolderError, match='No images'):
        run_report(
            [final,
             str(tmp_path / 'none'), '--out-dir',
             str(tmp_path / 'r')])
    # A file that is not an image, named like one: refused, named.
    (tmp_path / 'none' / 'page.jpg').write_text('<html>not a picture</html>')
    with pytest.raises(ImageFolderError, match='page.jpg.*not an image'):
        run_report(
            [final,
             str(tmp_path / 'none'), '--out-dir',
             str(tmp_path / 'r')])


def test_zoo_file_by_name_without_codec_options(codec, tmp_path):
    """A CompressAI zoo file (plain state_dict) is known by its name."""
    import torch
    from compressai.zoo import image as zoo_image

    from ci2p_mm.codec import build_codec

    _, images = codec
    url = zoo_image.model_urls['bmshj2018-factorized']['mse'][3]
    model = build_codec('bmshj2018-factorized', 3, pretrained=False)
    model.update(force=True)
    path = tmp_path / url.rsplit('/', 1)[-1]
    torch.save(model.state_dict(), path)
    result = run_report([
        str(path),
        str(images), '--out-dir',
        str(tmp_path / 'r'), '--max-images', '1', '--max-panels', '0'
    ])
    assert (result['codec'], result['quality']) == ('bmshj2018-factorized', 3)
