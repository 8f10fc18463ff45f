"""The collector settings of the long-running processes (run in a child: they last for the process)."""
import subprocess
import sys

CHILD = """
import gc
import hongyan.app, hongyan.domain.numbers
from hongyan import gc_policy

def walked():
    # What a full collection walks: the references of every tracked container.
    return sum(len(o) for o in gc.get_objects() if isinstance(o, (dict, list, set)))

before = walked()
gc_policy.settle()
after = walked()
print(gc.get_threshold(), gc.get_freeze_count() > 0, before, after)
assert gc.get_threshold() == (gc_policy.YOUNG, gc_policy.MIDDLE, gc_policy.OLD)
# The number plan's tables (hundreds of thousands of entries) are frozen: no
# longer walked by every full collection.
assert before > 500_000 and after < before // 10, (before, after)
"""


def test_settle_freezes_startup_and_raises_the_young_threshold():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
