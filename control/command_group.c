/* command_group.c - the control commands about controller groups: joining in hello, list_groups. */
/*
 * Kept out of command.c (the table) so that neither file passes the
 * 800-line limit; command.c's rows call these.  The groups themselves
 * live in group.c, their plugins in hook.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/log.h"
#include "controller.h"
#include "pop3d.h"

/* c joins group (hello); NULL, or why not. */
const char *
command_group_join(struct controller *c, const char *group)
{
	if (!group_name_valid(group))
		return "\"group\": 1-63 characters of A-Z a-z 0-9 _ . -";
	if (c->group[0] != '\0' && strcmp(c->group, group) != 0)
		return "a controller cannot change its group";
	if (c->group[0] != '\0')
		return NULL;
	if (group_join(&c->ctl->groups, group, c->id, c->name) != 0)
		return "cannot join the group (out of memory)";
	snprintf(c->group, sizeof(c->group), "%s", group);
	log_info("controller=%llu event=group-join group=%s", (unsigned long long)c->id, group);
	return NULL;
}

/* list_groups: every group, its members with their bound clients, its plugins. */
void
command_list_groups(struct controller *c, const struct codec_cmd *cmd)
{
	struct control *ctl = c->ctl;
	struct hook_plugin *p;
	const char **alias, **group;
	size_t n = 0;

	TAILQ_FOREACH (p, &ctl->plugins, entry)
		n++;
	alias = calloc(n + 1, sizeof(*alias));
	group = calloc(n + 1, sizeof(*group));
	if (alias == NULL || group == NULL) {
		free(alias);
		free(group);
		peer_reply_error(c, cmd->id, "internal_error", "out of memory");
		return;
	}
	n = 0;
	TAILQ_FOREACH (p, &ctl->plugins, entry)
		if (p->group[0] != '\0') {
			alias[n] = p->alias;
			group[n++] = p->group;
		}
	peer_reply_ok(c, cmd->id, codec_cmd_result_groups(&ctl->groups, alias, group, n));
	free(alias);
	free(group);
}
