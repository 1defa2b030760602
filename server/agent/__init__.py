"""The Claude side: the model gateway, a run's context, the tools a model calls, the turn loop, summaries."""
