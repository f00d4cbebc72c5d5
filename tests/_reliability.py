"""Helpers for tests/test_reliability_*.py: tiny configs, runs, bad files."""
import contextlib
import os
import os.path as osp
import subprocess
import sys
import time

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: A ViT small enough for a training run to take seconds on a CPU.
TINY_ARCH = dict(
    embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)


def make_toy_data(root, images_per_class=4, size=64, val_ratio=0.25):
    """A prepared toy Animals-10 (raw-img/ + meta/) under ``root``."""
    from ci2p_mm.datasets import make_split, make_toy_animals10
    make_split(
        make_toy_animals10(str(root), images_per_class, size),
        str(root),
        val_ratio=val_ratio,
        seed=0)
    return str(root)


def write_config(directory,
                 data_root,
                 name='tiny.py',
                 epochs=2,
                 batch_size=5,
                 num_workers=0,
                 extra='',
                 skip_bad_images=False,
                 base='configs/ci2p_vit_animals10.py'):
    """A tiny CI2P-ViT config on ``data_root`` with SafeLoadImageFromFile,
    random
    flips and drop path (so resume must restore random states)."""
    path = osp.join(str(directory), name)
    with open(path, 'w') as f:
        f.write(f"""
_base_ = [{osp.join(REPO, base)!r}]
model = dict(
    backbone=dict(arch=dict(_delete_=True, **{TINY_ARCH!r}), img_size=64,
                  drop_path_rate=0.1, patch_cfg=dict(pretrained=False)),
    head=dict(in_channels=64))
_train = [dict(type='SafeLoadImageFromFile'),
          dict(type='Resize', scale=(64, 64)),
          dict(type='RandomFlip', prob=0.5, direction='horizontal'),
          dict(type='PackInputs')]
_test = [dict(type='SafeLoadImageFromFile'),
         dict(type='Resize', scale=(64, 64)),
         dict(type='PackInputs')]
train_dataloader = dict(
    batch_size={batch_size}, num_workers={num_workers},
    persistent_workers={num_workers > 0},
    dataset=dict(data_root={str(data_root)!r}, pipeline=_train,
                 skip_bad_images={skip_bad_images}))
val_dataloader = dict(
    batch_size=10, num_workers=0,
    dataset=dict(data_root={str(data_root)!r}, pipeline=_test,
                 skip_bad_images={skip_bad_images}))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs={epochs})
default_hooks = dict(logger=dict(interval=1))
randomness = dict(seed=0, deterministic=True)
{extra}
""")
    return path


def run(args, env=None, check=True, timeout=600):
    """Run ``python ARGS`` from the repository; return (returncode, output)."""
    env = dict(os.environ if env is None else env)
    env.setdefault('OMP_NUM_THREADS', '1')
    env.setdefault('MKL_NUM_THREADS', '1')
    proc = subprocess.run([sys.executable, *args],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    output = proc.stdout + proc.stderr
    if check and proc.returncode:
        raise AssertionError(f'{args} failed ({proc.returncode}):\n'
                             f'{output[-5000:]}')
    return proc.returncode, output


# ---- a catalogue of the files web folders hold -------------------------


def _photo(h=48, w=64, seed=0):
    """A smooth colour image (compresses well, has a clear orientation)."""
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    img = np.stack(
        [xx * 255 // (w - 1), yy * 255 // (h - 1),
         np.full((h, w), 90)], -1).astype(np.uint8)
    img[:h // 4, :w // 4] = (250, 20, 20)  # red top-left corner marker
    return np.clip(img + rng.integers(0, 3, img.shape), 0,
                   255).astype(np.uint8)


def write_messy_files(directory):
    """Write every kind of surprising file; return ``{name: expectation}``.

    An expectation is ``('ok', check)`` with ``check(rgb) -> bool`` on the
    decoded ``uint8`` RGB image, or ``('bad', reason_substring)``.
    """
    import cv2
    from PIL import Image

    d = str(directory)
    os.makedirs(d, exist_ok=True)
    rgb = _photo()
    h, w = rgb.shape[:2]
    cases = {}

    def near(ref, tol=6):
        return lambda out: out.shape == ref.shape and np.abs(
            out.astype(int) - ref.astype(int)).mean() < tol

    def save(name, img, expect, **kwargs):
        img.save(osp.join(d, name), **kwargs)
        cases[name] = expect

    save('rgb.jpg', Image.fromarray(rgb), ('ok', near(rgb)), quality=95)
    save(
        'progressive.jpg',
        Image.fromarray(rgb), ('ok', near(rgb)),
        quality=95,
        progressive=True)
    save('UPPER_CASE.JPG', Image.fromarray(rgb), ('ok', near(rgb)), quality=95)
    save(
        'png_named.jpg',
        Image.fromarray(rgb), ('ok', near(rgb, 0.01)),
        format='PNG')
    grey = rgb[..., 1]
    save('grey.png', Image.fromarray(grey),
         ('ok', near(np.repeat(grey[..., None], 3, 2), 0.01)))
    save('bilevel.png', Image.fromarray(grey > 128),
         ('ok',
          near(
              np.repeat(((grey > 128) * 255).astype(np.uint8)[..., None], 3,
                        2), 0.01)))
    pal = Image.fromarray(rgb).quantize(64)
    save('palette.png', pal,
         ('ok', near(np.asarray(pal.convert('RGB')), 0.01)))
    # RGBA: left half opaque, right half fully transparent but storing
    # black, which OpenCV would show.
    alpha = np.zeros((h, w), np.uint8)
    alpha[:, :w // 2] = 255
    rgba = np.dstack([rgb, alpha])
    rgba[:, w // 2:, :3] = 0
    on_white = rgb.copy()
    on_white[:, w // 2:] = 255
    save('rgba.png', Image.fromarray(rgba), ('ok', near(on_white, 0.01)))
    save('grey_alpha.png',
         Image.fromarray(rgba).convert('LA'),
         ('ok', lambda out: out.shape == rgb.shape and
          (out[:, w // 2:] == 255).all()))
    pal_t = Image.fromarray(rgb).quantize(32)
    index = np.asarray(pal_t).copy()
    index[:, w // 2:] = 31  # entry 31 is transparent
    pal_t = Image.fromarray(index, 'P')
    pal_t.putpalette(Image.fromarray(rgb).quantize(32).getpalette())
    save(
        'palette_transparent.png',
        pal_t, ('ok', lambda out: (out[:, w // 2:] == 255).all()),
        transparency=31)
    cmyk_ref = np.asarray(Image.fromarray(rgb).convert('CMYK').convert('RGB'))
    save(
        'cmyk.jpg',
        Image.fromarray(rgb).convert('CMYK'), ('ok', near(cmyk_ref)),
        quality=95)
    # 16-bit: grey would clip to white with a plain convert('RGB').
    cv2.imwrite(osp.join(d, 'grey16.png'), grey.astype(np.uint16) * 257)
    cases['grey16.png'] = ('ok', near(np.repeat(grey[..., None], 3, 2), 0.6))
    cv2.imwrite(
        osp.join(d, 'rgb16.png'), (rgb.astype(np.uint16) * 257)[..., ::-1])
    cases['rgb16.png'] = ('ok', near(rgb, 0.6))
    # EXIF orientation 6: stored sideways, a viewer rotates 90 deg clockwise.
    stored = np.ascontiguousarray(np.rot90(rgb, 1))  # what a camera stores
    exif = Image.Exif()
    exif[0x0112] = 6
    save(
        'exif_rotated.jpg',
        Image.fromarray(stored), ('ok', near(rgb)),
        quality=95,
        exif=exif)
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    frames[0].save(
        osp.join(d, 'animated.gif'), save_all=True, append_images=frames[1:])
    cases['animated.gif'] = ('ok',
                             near(
                                 np.asarray(frames[0].convert(
                                     'P',
                                     palette=Image.ADAPTIVE).convert('RGB')),
                                 12))
    save(
        'rgba.webp',
        Image.fromarray(rgba),
        ('ok', lambda out:
         (out.shape == rgb.shape and (out[:, w // 2 + 2:] > 245).all())),
        lossless=True)
    save('small_8x8.png', Image.fromarray(rgb[:8, :8]),
         ('ok', near(rgb[:8, :8], 0.01)))
    big = np.zeros((3000, 4000, 3), np.uint8)
    big[:, :2000] = 200
    save('large_12mp.png', Image.fromarray(big),
         ('ok', lambda out: out.shape == big.shape))
    # Rejected.
    save('tracking_pixel.gif', Image.new('RGB', (1, 1)), ('bad', 'min_size'))
    save('tiny_4x4.jpg', Image.fromarray(rgb[:4, :4]), ('bad', 'min_size'))
    # Decompression bombs: 1-bit zeros, a few KB on disk. Above Pillow's
    # limit (89.5 MP) our check refuses; above twice it, Pillow itself.
    Image.new('1', (10000, 10000)).save(osp.join(d, 'bomb_100mp.png'))
    cases['bomb_100mp.png'] = ('bad', 'max_pixels')
    Image.new('1', (20000, 20000)).save(osp.join(d, 'bomb_400mp.png'))
    cases['bomb_400mp.png'] = ('bad', 'pixels')
    open(osp.join(d, 'empty.jpg'), 'wb').close()
    cases['empty.jpg'] = ('bad', 'empty file')
    noisy = np.random.default_rng(1).integers(
        0, 256, (256, 256, 3), dtype=np.uint8)
    # Cut in the header, and in the pixel data (OpenCV returns a grey
    # bottom part for the latter, without an error).
    for name, img, fmt in (('truncated_header.jpg', rgb, 'JPEG'),
                           ('truncated.jpg', noisy, 'JPEG'), ('truncated.png',
                                                              noisy, 'PNG')):
        buf = _encoded(img, fmt)
        with open(osp.join(d, name), 'wb') as f:
            f.write(buf[:len(buf) * 2 // 3])
        cases[name] = ('bad', 'truncated')
    with open(osp.join(d, 'html_page.jpg'), 'w') as f:
        f.write('<!DOCTYPE html><html><body>403 Forbidden</body></html>')
    cases['html_page.jpg'] = ('bad', 'not an image')
    with open(osp.join(d, 'notes.png'), 'w') as f:
        f.write('just some text\n')
    cases['notes.png'] = ('bad', 'not an image')
    Image.fromarray(rgb[..., 0].astype(np.float32) / 255).save(
        osp.join(d, 'float.tif'))
    cases['float.tif'] = ('bad', "mode 'F'")
    return cases


def _encoded(rgb, fmt):
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt)
    return buf.getvalue()


# ---- file systems that refuse writes -----------------------------------


@contextlib.contextmanager
def small_tmpfs(path, size_bytes=None, read_only=False):
    """A tmpfs mounted at ``path`` (``size_bytes`` big, or read-only);
    yields False, mounting nothing, where this process may not mount (not
    root), so the caller can fall back to another way to fail writes."""
    os.makedirs(path, exist_ok=True)
    options = ['ro' if read_only else 'rw']
    if size_bytes:
        options.append(f'size={size_bytes}')
    mounted = subprocess.run(
        ['mount', '-t', 'tmpfs', '-o', ','.join(options), 'tmpfs',
         str(path)],
        capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        for _ in range(10) if mounted else ():  # a file may still close
            if subprocess.run(['umount', str(path)]).returncode == 0:
                break
            time.sleep(0.5)
