/*
 * table-procedure-guard: a Trino system access control that refuses table procedures to all but the named users.
 *
 * Trino 476's file-based access control has no rule for table procedures: its checkCanExecuteTableProcedure allows
 * every user, so a read-only user could run `ALTER TABLE ... EXECUTE optimize / expire_snapshots /
 * remove_orphan_files / drop_extended_stats` (issue 16, item 1). The local platform's file mode stacks this control
 * after the file rules (access-control.config-files); Trino asks every stacked control and all must allow. For
 * every other question it answers "allow" (filters pass their input through, row filters and masks are the SPI's
 * empty defaults), so the file rules alone decide those.
 *
 * Configuration: table-procedure-guard.allowed-users = a Java regular expression matched against the user name.
 * Built by local_platform/artifacts.py (javac against Trino's own trino-spi jar), never downloaded.
 */
package tap.trino.guard;

import io.trino.spi.Plugin;
import io.trino.spi.security.AccessDeniedException;
import io.trino.spi.security.SystemAccessControl;
import io.trino.spi.security.SystemAccessControlFactory;
import io.trino.spi.security.SystemSecurityContext;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

public final class TableProcedureGuardPlugin implements Plugin {
    static final String NAME = "table-procedure-guard";
    static final String ALLOWED_USERS = NAME + ".allowed-users";

    @Override
    public Iterable<SystemAccessControlFactory> getSystemAccessControlFactories() {
        return List.of(new Factory());
    }

    static final class Factory implements SystemAccessControlFactory {
        @Override
        public String getName() {
            return NAME;
        }

        @Override
        public SystemAccessControl create(Map<String, String> config, SystemAccessControlContext context) {
            for (String key : config.keySet()) {
                if (!key.equals(ALLOWED_USERS)) {
                    throw new IllegalArgumentException(NAME + ": unknown property " + key + " (only " + ALLOWED_USERS + ")");
                }
            }
            String users = config.get(ALLOWED_USERS);
            if (users == null || users.isBlank()) {
                throw new IllegalArgumentException(NAME + ": " + ALLOWED_USERS + " is required");
            }
            Guard guard = new Guard(Pattern.compile(users));
            return (SystemAccessControl) Proxy.newProxyInstance(
                    SystemAccessControl.class.getClassLoader(), new Class<?>[] {SystemAccessControl.class}, guard);
        }
    }

    static final class Guard implements InvocationHandler {
        private final Pattern allowedUsers;

        Guard(Pattern allowedUsers) {
            this.allowedUsers = allowedUsers;
        }

        @Override
        public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
            String name = method.getName();
            switch (name) {
                case "checkCanExecuteTableProcedure" -> {
                    String user = ((SystemSecurityContext) args[0]).getIdentity().getUser();
                    if (!allowedUsers.matcher(user).matches()) {
                        AccessDeniedException.denyExecuteTableProcedure(args[1].toString(), (String) args[2]);
                    }
                    return null;
                }
                case "toString" -> {
                    return NAME + "(" + allowedUsers.pattern() + ")";
                }
                case "hashCode" -> {
                    return System.identityHashCode(proxy);
                }
                case "equals" -> {
                    return proxy == args[0];
                }
                default -> {
                }
            }
            if (name.startsWith("check")) {
                return null;
            }
            if (name.startsWith("can")) {
                return true;
            }
            if (name.startsWith("filter")) {
                return args[args.length - 1];
            }
            return InvocationHandler.invokeDefault(proxy, method, args);
        }
    }
}
