from pathlib import Path

import pytest
import torch

from colortrack.demo.synthetic import make_video
from colortrack.io.masks import write_mask
from colortrack.io.video import write_frames_png

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA.resolve()}")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for tests of small convolutions: on a shared, loaded CPU, OpenMP
    threads waiting on each other make them tens of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def davis_root(tmp_path_factory):
    """A generated DAVIS-layout dataset with attributes: alpha (one object), beta (two)."""
    root = tmp_path_factory.mktemp("davis")
    for name, objects, seed in (("alpha", 1, 1), ("beta", 2, 2)):
        video = make_video(num_frames=8, height=48, width=64, num_objects=objects, seed=seed)
        write_frames_png(root / "JPEGImages" / "480p" / name, video.frames)
        for index, mask in enumerate(video.masks):
            write_mask(root / "Annotations" / "480p" / name / f"{index:05d}.png", mask)
    (root / "db_info.yml").write_text(
        "sequences:\n- {name: alpha, attributes: [FM, OCC]}\n- {name: beta, attributes: [FM]}\n"
    )
    return root
