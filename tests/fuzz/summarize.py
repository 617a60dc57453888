"""Counts the test cases Schemathesis sent, from its NDJSON reports, and prints how the API
answered them: method, path and status. Exits 1 if fewer than MIN cases were sent.

Usage: python summarize.py MIN REPORT.ndjson...
"""

import collections
import json
import sys
from urllib.parse import urlsplit


def main() -> int:
    minimum, paths = int(sys.argv[1]), sys.argv[2:]
    answers: collections.Counter = collections.Counter()
    for path in paths:
        with open(path, encoding="utf-8") as report:
            for line in report:
                event = json.loads(line).get("ScenarioFinished")
                if not event:
                    continue
                for interaction in (event.get("recorder") or {}).get("interactions", {}).values():
                    request, response = interaction["request"], interaction.get("response")
                    status = response["status_code"] if response else "no response"
                    answers[(urlsplit(request["uri"]).path, request["method"], status)] += 1
    total = sum(answers.values())
    print(f"{'path':<20} {'method':<8} {'status':<6} cases")
    for (path, method, status), count in sorted(answers.items(), key=lambda kv: str(kv[0])):
        print(f"{path:<20} {method:<8} {status!s:<6} {count}")
    print(f"total: {total} test cases (at least {minimum} required)")
    return 0 if total >= minimum else 1


if __name__ == "__main__":
    sys.exit(main())
