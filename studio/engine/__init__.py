"""What happens to a generation, with no request objects in it: the validated spec, its price, the services
that submit, cancel and refund, the runner that drives a provider, the events the pages hear, and the thin
Celery tasks. Pages (`studio.web`) and the API (`studio.api`) call in; nothing here calls back up."""
