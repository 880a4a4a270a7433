from tianfu.cli import app

app(prog_name="tianfu")
