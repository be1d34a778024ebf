from tests.engines import s3_env, s3_server  # noqa: F401 (session fixtures: the real S3 API server)
