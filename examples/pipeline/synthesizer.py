"""A scripted synthesizer: one line per finding of its prompt, each citing it as [f-ID]."""

import re
import sys

prompt = sys.stdin.read()
findings = re.findall(r"^- \[(f-[A-Za-z0-9_-]+)\] (.*?)(?: \(sources: .*\))?$", prompt, re.M)
print("What the workers found:")
for fid, summary in findings:
    print(f"- {summary} [{fid}]")
