"""A review client that tests kill: it decides suggestions the way the review page does.

    python -m tests.app.decider DB_URL DATASET_ID REVIEWER SEED

Each suggestion is leased with :func:`db.review.claim_next` and decided with
:func:`db.review.decide`, each in its own transaction (as ``app/web/views/review.py`` does). After
each committed decision it prints ``decided <suggestion id> <decision>`` and flushes, so the test
knows which decisions a user saw recorded. Prints ``empty`` and exits when the queue is empty.
"""

from __future__ import annotations

import random
import sys

from app.store import open_store
from db.review import claim_next, decide


def main(argv: list[str]) -> int:
    url, dataset_id, reviewer, seed = argv[0], int(argv[1]), argv[2], int(argv[3])
    store = open_store(url, migrate=False)
    rng = random.Random(seed)
    while True:
        with store.write() as s:
            sugg = claim_next(s, dataset_id, reviewer, lease_s=600)
            if sugg is None:
                print("empty", flush=True)
                return 0
            sid = sugg.id
        decision = rng.choice(["accept", "reject", "skip"])
        with store.write() as s:
            decide(s, sid, decision, reviewer)
        print(f"decided {sid} {decision}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
