"""Executors: where a run's episode jobs are played.

`local` plays them as asyncio tasks in this process (`normlab.executors.local`);
`processes` spreads them over worker processes on this machine (forked from a fork server
that imported normlab, the envs and LiteLLM once): the workers play, this process writes
every episode, so scripted runs use more than one core and LLM runs spread LiteLLM's CPU
time per call (`normlab.executors.processes`).
Results never depend on the executor: an episode is a function of (scenario, index).
"""

EXECUTORS = ("local", "processes")
