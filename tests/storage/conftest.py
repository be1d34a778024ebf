from tests.engines import postgres, s3_env, s3_server  # noqa: F401 (session fixtures: the real engines)
