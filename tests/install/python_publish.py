"""Publish through the *installed* minerwatch module (run by install_test.py).

usage: python_publish.py ENDPOINT PREFIX

Checks that the module and the library it loaded both come from PREFIX,
then publishes two tasks through Publisher.task(): one that succeeds and one
that raises (its task_complete must still be sent, with success=False).
"""
import os
import sys

endpoint, prefix = sys.argv[1], os.path.realpath(sys.argv[2])

import minerwatch  # noqa: E402  (after the arguments, for a clear usage error)


def inside(path):
    return os.path.realpath(path).startswith(prefix + os.sep)


if not inside(minerwatch.__file__):
    sys.exit("FAIL: minerwatch imported from %s, not from %s" % (minerwatch.__file__, prefix))
with open("/proc/self/maps") as maps:
    loaded = sorted({line.split()[-1] for line in maps if "libminerwatch.so" in line})
if not loaded or not all(inside(p) for p in loaded):
    sys.exit("FAIL: the module loaded %s, not the library installed in %s" % (loaded, prefix))
print("module %s, library %s, libminerwatch %s" % (minerwatch.__file__, loaded[0],
                                                   minerwatch.version()))

with minerwatch.Publisher(">" + endpoint, miner="ext-python") as pub:
    if not pub.wait_ready(10000):
        sys.exit("FAIL: no subscriber on %s after 10 s" % endpoint)
    with pub.task("py-ok", prompt="Search for jobs", url="https://example.com/jobs") as task:
        task.actions(3, action_type="type")
    try:
        with pub.task("py-fail", prompt="Fill the form") as task:
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    else:
        sys.exit("FAIL: task() swallowed the exception")
    print("sent %d, dropped %d" % (pub.sent, pub.dropped))
    if pub.sent != 5 or pub.dropped != 0:
        sys.exit("FAIL: expected 5 events sent and none dropped")
