"""The reviewers' CLI, `tawasul-review-cli`: a client of review's gRPC API, installed apart from
the service so that its terminal libraries (typer, rich) stay out of the service's processes."""
