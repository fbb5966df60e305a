"""`ved train`'s machinery: the trainer, data, metrics, optimiser and schedule, the run's state, several processes,
the log, and the auxiliary CTC head."""
