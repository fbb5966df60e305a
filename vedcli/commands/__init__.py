"""The bodies of the commands (caption/ocr, compose, convert, info, train) and their inputs and output writers: they
call the library and shape what is printed; vedcli/cli.py owns the flags."""
