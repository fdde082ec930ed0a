"""Reference strategies of the games, one module per game; each registers its strategies with
`normlab.agents.scripted.register_strategy` when imported (every module here is imported with
`normlab.agents.scripted`)."""
