"""Reading checkpoints safely, recognising what they hold, and writing our own."""
