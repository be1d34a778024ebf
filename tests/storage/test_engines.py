"""The engines themselves: the S3 server stores objects, PostgreSQL takes a password login and a database."""

import psycopg
import pytest

from tests.engines import MotoS3Server, PostgresServer


def test_the_s3_server_round_trips_an_object(s3_server: MotoS3Server):
    client = s3_server.client()
    client.create_bucket(Bucket="engines")
    client.put_object(Bucket="engines", Key="a/b.txt", Body=b"hello")
    assert client.get_object(Bucket="engines", Key="a/b.txt")["Body"].read() == b"hello"


def test_postgres_takes_a_password_login_and_a_new_database(postgres: PostgresServer):
    uri = postgres.create_database("engines")
    with psycopg.connect(uri) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), current_user, inet_server_addr()::text")
        assert cursor.fetchone() == ("engines", "plinth", "127.0.0.1/32")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(uri.replace(postgres.password, "wrong")).close()
