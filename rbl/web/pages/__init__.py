"""The public site's page resources, one class per path (``rbl.web.site`` builds the tree).

``base`` holds what every page shares (the site's state, the answer, the base
resource with its headers, 404s and 405s); ``lookup`` the home page and the
lookup; ``removal`` the removal form and a request's status page.
"""
