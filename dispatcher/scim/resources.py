"""The SCIM resources the service serves (RFC 7643): Users with the enterprise extension and
Groups, as scim2-models describes them, and the three discovery documents."""

from __future__ import annotations

from typing import Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    EnterpriseUser,
    ETag,
    Filter,
    Group,
    Meta,
    Patch,
    ResourceType,
    Schema,
    ScimPolicy,
    ServiceProviderConfig,
    Sort,
    User,
)

# The one user model: the core User with the enterprise extension (department, employeeNumber).
UserModel: Any = User[EnterpriseUser]
GroupModel: Any = Group
ENTERPRISE = str(EnterpriseUser.__schema__)
USER_SCHEMA = str(User.__schema__)
GROUP_SCHEMA = str(Group.__schema__)
# What the service tolerates beyond the strict reading of RFC 7644, as Microsoft Entra ID
# sends it: a `remove` of group members naming them in `value`, and a `replace` of
# `emails[type eq "work"].value` on a user who has no work address yet (the entry is made).
POLICY = ScimPolicy(
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)
# The most resources one page of a list or search holds.
MAX_RESULTS = 200


def resource_types() -> list[ResourceType]:
    """The resource types: User (with the enterprise extension) and Group."""
    user = ResourceType.from_resource(UserModel)
    group = ResourceType.from_resource(GroupModel)
    user.meta = Meta(resource_type="ResourceType", location="/scim/v2/ResourceTypes/User")
    group.meta = Meta(resource_type="ResourceType", location="/scim/v2/ResourceTypes/Group")
    return [user, group]


def schemas() -> list[Schema]:
    """The schemas of the resources and the extension, each with its meta."""
    out = []
    for model in (User, EnterpriseUser, Group):
        schema = model.to_schema()
        schema.meta = Meta(resource_type="Schema", location=f"/scim/v2/Schemas/{schema.id}")
        out.append(schema)
    return out


def service_provider_config() -> ServiceProviderConfig:
    """What the service supports: PATCH and filters yes; bulk, sorting, ETags and password
    changes no; bearer tokens of the `scim` role."""
    return ServiceProviderConfig(
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="Bearer token",
                description="A Clarion API token of the scim role: clarion token add --role scim",
                primary=True,
            )
        ],
        meta=Meta(resource_type="ServiceProviderConfig",
                  location="/scim/v2/ServiceProviderConfig"),
    )

