"""A script that needs a package the Python runtime does not bundle
(sortedcontainers, from requirements.txt) beside numpy: each row's values
ranked and its median, the way a feature-engineering step might."""
import json

import numpy as np
from sortedcontainers import SortedList


def init():
    global version
    import sortedcontainers

    version = sortedcontainers.__version__


def run(raw_data):
    rows = np.asarray(json.loads(raw_data)["data"], dtype=np.float64)
    out = []
    for row in rows:
        ordered = SortedList(row.tolist())
        out.append({
            "ranks": [ordered.bisect_left(v) for v in row.tolist()],
            "median": float(np.median(np.asarray(list(ordered)))),
        })
    return {"rows": out, "sortedcontainers": version}
