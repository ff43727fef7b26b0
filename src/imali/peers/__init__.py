"""Local peers: loopback stand-ins for the outside systems Imali talks to, for the demo and the tests."""
