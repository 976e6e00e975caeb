"""Alpaca's market-data stream v2 over our market, so bots built on alpaca-py run unchanged.

protocol (sans I/O: actions and messages) -> session (one connection's state) -> stream (hub
ticks and bars as Alpaca data) -> endpoint (the WebSocket at /v2/{feed}).
"""
