"""GroupService over gRPC: converts proto <-> domain calls, nothing else. The interceptor has
already authenticated the caller and checked the request's buf.validate rules."""

from __future__ import annotations

from services.group import names, rules
from services.group.domain import GroupDomain, GroupView
from services.group.store import InviteRow, MemberRow, Role
from services.runtime.context import current_principal
from services.runtime.pbtime import timestamp
from zynk.group.v1 import group_pb2, group_pb2_grpc


def group_pb(v: GroupView) -> group_pb2.Group:
    g = v.group
    return group_pb2.Group(
        name=names.group_name(g.id), display_name=g.display_name, description=g.description,
        discoverable=g.discoverable, owner=names.user_name(g.owner_id),
        conversation=names.conversation_name(g.id), member_count=g.member_count,
        caller_role=int(v.caller_role), create_time=timestamp(g.create_time),
        update_time=timestamp(g.update_time), etag=rules.etag(g.id, g.revision))


def member_pb(m: MemberRow) -> group_pb2.Member:
    return group_pb2.Member(
        name=names.member_name(m.group_id, m.user_id), user=names.user_name(m.user_id),
        role=int(m.role), added_by=names.user_name(m.added_by) if m.added_by else "",
        invite=names.invite_name(m.group_id, m.invite_id) if m.invite_id else "",
        join_time=timestamp(m.join_time))


def invite_pb(i: InviteRow, token: str = "") -> group_pb2.Invite:
    return group_pb2.Invite(
        name=names.invite_name(i.group_id, i.id), token=token, expire_time=timestamp(i.expire_time),
        max_uses=i.max_uses, use_count=i.use_count, creator=names.user_name(i.creator_id),
        create_time=timestamp(i.create_time))


def _user_refs(values, field: str) -> list[str]:
    return [names.parse_user(v, f"{field}[{i}]") for i, v in enumerate(values)]


class GroupServicer(group_pb2_grpc.GroupServiceServicer):
    def __init__(self, domain: GroupDomain) -> None:
        self._d = domain

    async def CreateGroup(self, request, context_):
        g = request.group
        view = await self._d.create_group(
            current_principal(), g.display_name, g.description, g.discoverable,
            _user_refs(request.initial_members, "initial_members"))
        return group_pb2.CreateGroupResponse(group=group_pb(view))

    async def GetGroup(self, request, context_):
        view = await self._d.get_group(current_principal(),
                                       names.parse_group(request.name, "name"))
        return group_pb2.GetGroupResponse(group=group_pb(view))

    async def ListGroups(self, request, context_):
        page = await self._d.list_groups(current_principal(), request.page_size,
                                         request.page_token)
        return group_pb2.ListGroupsResponse(
            groups=[group_pb(GroupView(v.group, v.member.role)) for v in page.items],
            next_page_token=page.next_page_token)

    async def UpdateGroup(self, request, context_):
        g = request.group
        view = await self._d.update_group(
            current_principal(), names.parse_group(g.name, "group.name"), g.etag,
            {"display_name": g.display_name, "description": g.description,
             "discoverable": g.discoverable},
            list(request.update_mask.paths))
        return group_pb2.UpdateGroupResponse(group=group_pb(view))

    async def DeleteGroup(self, request, context_):
        await self._d.delete_group(current_principal(), names.parse_group(request.name, "name"),
                                   request.etag)
        return group_pb2.DeleteGroupResponse()

    async def ListMembers(self, request, context_):
        page = await self._d.list_members(
            current_principal(), names.parse_group(request.parent, "parent"),
            request.page_size, request.page_token)
        return group_pb2.ListMembersResponse(members=[member_pb(m) for m in page.items],
                                             next_page_token=page.next_page_token)

    async def AddMembers(self, request, context_):
        added = await self._d.add_members(current_principal(),
                                          names.parse_group(request.group, "group"),
                                          _user_refs(request.users, "users"))
        return group_pb2.AddMembersResponse(members=[member_pb(m) for m in added])

    async def RemoveMembers(self, request, context_):
        removed = await self._d.remove_members(current_principal(),
                                               names.parse_group(request.group, "group"),
                                               _user_refs(request.users, "users"))
        return group_pb2.RemoveMembersResponse(removed_count=removed)

    async def UpdateMemberRole(self, request, context_):
        group_id, user_ref = names.parse_member(request.name, "name")
        member = await self._d.update_member_role(current_principal(), group_id, user_ref,
                                                  Role(request.role))
        return group_pb2.UpdateMemberRoleResponse(member=member_pb(member))

    async def LeaveGroup(self, request, context_):
        successor = (names.parse_user(request.successor, "successor")
                     if request.successor else None)
        result = await self._d.leave_group(current_principal(),
                                           names.parse_group(request.name, "name"), successor)
        return group_pb2.LeaveGroupResponse(
            new_owner=names.user_name(result.new_owner) if result.new_owner else "",
            group_deleted=result.group_deleted)

    async def CreateInvite(self, request, context_):
        inv = request.invite
        expire = (inv.expire_time.ToNanoseconds() / 1e9 if inv.HasField("expire_time")
                  else None)
        created = await self._d.create_invite(current_principal(),
                                              names.parse_group(request.parent, "parent"),
                                              expire, inv.max_uses)
        return group_pb2.CreateInviteResponse(invite=invite_pb(created.invite, created.token))

    async def ListInvites(self, request, context_):
        page = await self._d.list_invites(
            current_principal(), names.parse_group(request.parent, "parent"),
            request.page_size, request.page_token)
        return group_pb2.ListInvitesResponse(invites=[invite_pb(i) for i in page.items],
                                             next_page_token=page.next_page_token)

    async def DeleteInvite(self, request, context_):
        group_id, invite_id = names.parse_invite(request.name, "name")
        await self._d.delete_invite(current_principal(), group_id, invite_id)
        return group_pb2.DeleteInviteResponse()

    async def JoinGroup(self, request, context_):
        result = await self._d.join_group(current_principal(), request.invite_token)
        return group_pb2.JoinGroupResponse(group=group_pb(result.view),
                                           member=member_pb(result.member))
