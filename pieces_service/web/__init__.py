"""Request plumbing shared by every endpoint: the flask-smorest subclasses and the error
shape (`extensions`), conditional GETs (`conditional`), request ids, the request log line
and metrics (`observability`, `logs`), the platform's probes (`health`), and the files of the
docs page (`swagger_ui`)."""
