"""The Mesa engine, the reference: :class:`~sim.engines.mesa.model.TransferModel` and its agents (firms, their
projects, universities, brokers, achievements), each a view of its row of the shared state."""
