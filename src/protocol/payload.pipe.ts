import {
  ArgumentMetadata,
  Injectable,
  PipeTransform,
  Type,
} from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { ValidationError, getMetadataStorage, validate } from 'class-validator';
import { isJsonObject } from '@pai/client/protocol/envelope';
import { FieldProblem } from '@pai/client/protocol/error-code';
import { ProtocolError } from './protocol-error';

function problemsOf(errors: ValidationError[], parent = ''): FieldProblem[] {
  return errors.flatMap((error) => {
    const field = parent ? `${parent}.${error.property}` : error.property;
    const own = error.constraints
      ? [
          {
            field,
            problem: Object.values(error.constraints)[0],
          },
        ]
      : [];
    return [...own, ...problemsOf(error.children ?? [], field)];
  });
}

const declaredByDto = new WeakMap<Type<object>, ReadonlySet<string>>();

/** The fields a DTO class declares through its class-validator decorators. */
function declaredFields(dto: Type<object>): ReadonlySet<string> {
  let fields = declaredByDto.get(dto);
  if (!fields) {
    const metadata = getMetadataStorage().getTargetValidationMetadatas(
      dto,
      '',
      true,
      false,
    );
    fields = new Set(metadata.map((entry) => entry.propertyName));
    declaredByDto.set(dto, fields);
  }
  return fields;
}

/**
 * Checks a payload against its DTO class with class-validator. Every field the DTO does not declare
 * is a BAD_REQUEST, and nothing is converted: a number where a string is required is refused, not
 * coerced. Properties are defined, not assigned, so a "__proto__" key is an unknown field and
 * never a prototype.
 */
@Injectable()
export class PayloadPipe implements PipeTransform {
  async transform(
    value: unknown,
    metadata: ArgumentMetadata,
  ): Promise<unknown> {
    const dto = metadata.metatype as Type<object> | undefined;
    if (!dto || dto === Object) {
      throw new Error('a payload parameter must be typed with a DTO class');
    }
    if (!isJsonObject(value)) {
      throw ProtocolError.badRequest([
        { field: 'payload', problem: 'must be a JSON object' },
      ]);
    }
    // Checked here on own keys, before class-validator sees the object: it looks fields up in a
    // plain object, so inherited names ("constructor", "__proto__", "hasOwnProperty") would pass
    // as known, and an own "constructor" would even hide the DTO class and skip every rule.
    const declared = declaredFields(dto);
    const unknown = Object.keys(value).filter((key) => !declared.has(key));
    if (unknown.length > 0) {
      throw ProtocolError.badRequest(
        unknown.map((key) => ({
          field: `payload.${key}`,
          problem: 'unknown field',
        })),
      );
    }
    const instance = Object.create(dto.prototype as object) as Record<
      string,
      unknown
    >;
    for (const key of Object.keys(value)) {
      Object.defineProperty(instance, key, {
        value: value[key],
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    // A DTO without fields (system.ping) has no rule to run, and {} is all that got here.
    if (declared.size === 0) return instance;
    const errors = await validate(instance, {
      // Payloads are always DTO instances here; an empty DTO (system.ping) must not count as unknown.
      forbidUnknownValues: false,
      validationError: { target: false, value: false },
    });
    if (errors.length > 0) {
      throw ProtocolError.badRequest(
        problemsOf(errors).map(({ field, problem }) => ({
          field: `payload.${field}`,
          problem,
        })),
      );
    }
    return instance;
  }
}

/** The verified envelope's `payload`, validated against the parameter's DTO class. */
export const SignedPayload = (): ParameterDecorator =>
  Payload('payload', PayloadPipe);
