import pytest
import torch

from colortrack.core.memory import ContextMemory, MemoryConfig
from colortrack.errors import InputError


def add_frames(memory, indices):
    for index in indices:
        memory.add(torch.full((2, 3, 3), float(index)), torch.full((1, 3, 3), float(index)))


def frame_indices(memory):
    keys, values = memory.context()
    assert keys.shape[0] == values.shape[0]
    return [int(key[0, 0, 0]) for key in keys]


def test_first_frame_and_last_n():
    memory = ContextMemory(MemoryConfig(keep_first=True, recent=3))
    add_frames(memory, [0])
    assert frame_indices(memory) == [0]
    add_frames(memory, range(1, 7))
    assert frame_indices(memory) == [0, 4, 5, 6]


def test_paper_window_forgets_the_first_frame():
    memory = ContextMemory(MemoryConfig(keep_first=False, recent=3))
    add_frames(memory, range(6))
    assert frame_indices(memory) == [3, 4, 5]


def test_first_frame_only():
    memory = ContextMemory(MemoryConfig(keep_first=True, recent=0))
    add_frames(memory, range(4))
    assert frame_indices(memory) == [0]


def test_empty_memory_and_empty_policy_are_errors():
    with pytest.raises(RuntimeError):
        ContextMemory(MemoryConfig()).context()
    with pytest.raises(InputError, match="must keep the first frame"):
        ContextMemory(MemoryConfig(keep_first=False, recent=0))


def test_pinned_frames_stay_for_good_between_the_first_and_the_recent_ones():
    memory = ContextMemory(MemoryConfig(keep_first=True, recent=2))
    add_frames(memory, [0])
    memory.pin(torch.full((2, 3, 3), 40.0), torch.full((1, 3, 3), 40.0))
    add_frames(memory, range(1, 6))
    assert frame_indices(memory) == [0, 40, 4, 5]


def test_anchors_are_the_first_and_pinned_frames_at_the_front_of_the_context():
    memory = ContextMemory(MemoryConfig(keep_first=True, recent=2))
    add_frames(memory, [0])
    memory.pin(torch.full((2, 3, 3), 9.0), torch.full((1, 3, 3), 9.0))
    add_frames(memory, range(1, 5))
    assert memory.num_anchors == 2
    assert frame_indices(memory)[: memory.num_anchors] == [0, 9]
    assert ContextMemory(MemoryConfig(keep_first=False, recent=2)).num_anchors == 0
