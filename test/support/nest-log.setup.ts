import { Logger } from '@nestjs/common';
import { nestLog } from './nest-log';

// Every test file, unit specs included: code that logs through Nest's Logger outside a test app.
Logger.overrideLogger(nestLog);

beforeEach(() => nestLog.clear());
