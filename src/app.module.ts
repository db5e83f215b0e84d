import { DynamicModule, Module } from '@nestjs/common';
import { dataSourceOptions } from '../ormconfig';
import { AuthModule } from './auth/auth.module';
import { AppConfig } from './config/config';
import { ConfigModule } from './config/config.module';
import { DatabaseModule } from './database/database.module';
import { LedgerModule } from './ledger/ledger.module';
import { ObservabilityModule } from './observability/observability.module';
import { ProtocolModule } from './protocol/protocol.module';
import { SystemController } from './system/system.controller';
import { TransactionsModule } from './transactions/transactions.module';
import { UsersModule } from './users/users.module';

@Module({})
export class AppModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        DatabaseModule.forRoot(dataSourceOptions),
        ObservabilityModule,
        ProtocolModule,
        AuthModule,
        UsersModule,
        TransactionsModule,
        LedgerModule,
      ],
      controllers: [SystemController],
    };
  }
}
