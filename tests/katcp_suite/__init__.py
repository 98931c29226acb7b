"""Run katcp-python 0.9.3's own test modules against katcpx (see :mod:`katcp_suite.runner`)."""
