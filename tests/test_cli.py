"""`flask apps …` and `flask keys …`: keys shown once, listed by prefix, revocable."""

from app.identity import keys


def run(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output


def test_apps_and_keys_lifecycle(embedded_app):
    assert run(embedded_app, "apps", "create", "shop") == (0, "created application shop\n")
    code, output = run(embedded_app, "apps", "create", "shop")
    assert code != 0 and "already exists" in output

    code, output = run(embedded_app, "keys", "create", "shop", "--scope", "ingest", "--scope", "read")
    assert code == 0
    fields = dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)
    key, prefix = fields["key"], fields["prefix"]
    assert fields["scopes"] == "ingest,read" and key.startswith(f"eye_{prefix}_")

    code, listing = run(embedded_app, "apps", "list")
    assert code == 0 and "shop" in listing and prefix in listing and "active" in listing
    assert key not in listing  # the key itself is never shown again

    with embedded_app.app_context():
        assert keys.authenticate(key, 0) is not None
    assert run(embedded_app, "keys", "revoke", prefix) == (0, f"revoked {prefix}\n")
    with embedded_app.app_context():
        assert keys.authenticate(key, 0) is None
    assert "revoked" in run(embedded_app, "apps", "list")[1]
    code, output = run(embedded_app, "keys", "revoke", prefix)
    assert code != 0


def test_key_for_unknown_application_or_scope_fails(embedded_app):
    code, output = run(embedded_app, "keys", "create", "ghost", "--scope", "read")
    assert code != 0 and "ghost" in output
    code, output = run(embedded_app, "keys", "create", "ghost", "--scope", "write")
    assert code != 0
