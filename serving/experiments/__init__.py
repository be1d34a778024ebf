"""A/B experiments on outcomes: sticky variants, outcomes from /feedback, a sequential decision."""
