"""The browser app: its built assets (static/, from web-src/) and the routes that serve them."""
