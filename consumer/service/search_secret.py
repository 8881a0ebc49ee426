"""The OpenSearch password read once at start from `pipelines.search.password_secret_arn` (on
ECS the task definition injects it as CONSUMER_PIPELINES__SEARCH__PASSWORD instead). The secret
is the password itself, or JSON with a "password" key (as OpenSearch and RDS create them).
"""

from __future__ import annotations

import orjson

from consumer.settings import Settings


class SearchSecretError(ValueError):
    """The secret holds no usable password (one line; never the secret's value)."""


async def search_password(settings: Settings) -> str | None:
    """The password to use: the settings' own, else the secret's, else None."""
    search = settings.pipelines.search
    if search.password is not None:
        return search.password.get_secret_value()
    arn = search.password_secret_arn
    if not (search.enabled and search.endpoint and arn):
        return None
    async with settings.aws.endpoints().aio_client("secretsmanager") as client:
        response = await client.get_secret_value(SecretId=arn)
    return password_in(response.get("SecretString"), arn)


def password_in(secret: object, arn: str) -> str:
    if not isinstance(secret, str) or not secret:
        raise SearchSecretError(
            f"pipelines.search.password_secret_arn: secret {arn} has no SecretString"
        )
    if secret.lstrip().startswith("{"):
        try:
            fields = orjson.loads(secret)
        except orjson.JSONDecodeError:
            return secret
        password = fields.get("password") if isinstance(fields, dict) else None
        if not isinstance(password, str) or not password:
            raise SearchSecretError(
                f"pipelines.search.password_secret_arn: secret {arn} is JSON without a "
                '"password" key'
            )
        return password
    return secret
