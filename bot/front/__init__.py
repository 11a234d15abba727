"""The front-ends: each only parses requests and words answers (JSON API, /automation chat command)."""
