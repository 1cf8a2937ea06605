from paramctl.cli import app

app(prog_name="paramctl")
