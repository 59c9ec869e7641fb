"""The HTTP app: Flask's create_app, its error handlers, routes (one blueprint per concern), the OpenAPI document
and the playground's static files. The only layer that imports Flask."""
