"""``python -m oxwsgi ...`` runs the bundled ``oxwsgi`` binary."""

from oxwsgi._cli import main

if __name__ == "__main__":
    main()
