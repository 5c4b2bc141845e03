"""Runtime wiring of ``rbl serve``: the composition root, reload, workers, the follower."""
