from ceruleum.cli import app

app()
