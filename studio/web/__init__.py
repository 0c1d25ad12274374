"""The pages: the Create page with its composer and live cards, the gallery, image pages, projects and the
websocket consumer that keeps them live."""
