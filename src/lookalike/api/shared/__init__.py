"""What the API dialects share (native error bodies, the request id, request-body reading, FastAPI
dependencies that hand routes the services); none of the dialects owns it, and it imports none of them."""
