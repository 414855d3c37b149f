"""What an operator watches: Prometheus metrics at /metrics and the process's logs (text or JSON).

Adapters at the edge of the process, like storage: the service layer reports through its own port
(lookalike.service.metrics) and never imports this package; the API's composition root installs it
(install.install_metrics).
"""
