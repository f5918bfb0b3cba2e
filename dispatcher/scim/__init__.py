"""SCIM 2.0 provisioning (RFC 7643/7644): identity providers push people and groups into the
directory at `/scim/v2/`.

`resources.py` holds the models (scim2-models) and the discovery documents, `mapping.py` turns
a SCIM User and its groups into a directory person, `provisioning.py` is the create, read,
search, replace, patch and delete of Users and Groups, and `routes.py` is their HTTP side.
"""
