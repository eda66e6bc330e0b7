"""A scripted planner: one task per term the previous synthesis names, as a JSON array."""

import json
import re
import sys

prompt = sys.stdin.read()
terms = list(dict.fromkeys(re.findall(r"mention '([a-z_]+)'", prompt)))
print(
    json.dumps(
        [
            {
                "description": f"Find where {term} meets a timeout",
                "data": {"term": term, "near": "timeout"},
            }
            for term in terms
            if term != "timeout"
        ]
    )
)
