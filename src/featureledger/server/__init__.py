"""The HTTP feature server (`featureledger serve`): ``pip install 'featureledger[server]'``."""

from featureledger.server.app import create_app

__all__ = ["create_app"]
