// Creates the Hive 2.3 metastore's transaction and lock tables (TXNS, HIVE_LOCKS, ...) in its database.
// Iceberg's HiveCatalog takes metastore locks on every commit, and Hive 2.3 creates these tables only in
// test mode. Run once, with hive-site.xml on the classpath, before the metastore first starts.
import org.apache.hadoop.hive.conf.HiveConf;
import org.apache.hadoop.hive.metastore.txn.TxnDbUtil;

public class InitMetastoreTxnTables {
    public static void main(String[] args) throws Exception {
        TxnDbUtil.prepDb(new HiveConf());
        System.out.println("metastore transaction tables created");
    }
}
