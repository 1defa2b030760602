"""The Claude side: the model gateway, a run's context, the tools a model calls, the turn loop, summaries.

`gateway` (the one AsyncAnthropic client, and the SDK's errors as ours), `prompt` (what the model
sees), `inner_tools` (the tools of a run, bound to its session through its owner's handle),
`turn` (one run: prepare, model calls, tool uses, finish), `transcript` (what a turn produced, as
the run it stores), `summaries` (summarize_session). The SDK's types are imported for type
checking only: the SDK itself loads off the event loop, when the gateway first builds its client.
"""
